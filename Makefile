# kiln: the two entry points on a fresh machine are `make demo` and `make test`.
# Everything below installs what is missing, configures and builds.
JOBS ?= 2
BUILD ?= build

.PHONY: all deps build build-asan build-fuzz demo test test-fast bench clean

all: build

deps:
	@bash tools/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

build-fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang-19 \
	  -DKILN_FUZZ=ON -DKILN_MODULES=ir -DKILN_TEST_GLOB=none >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzz_parse

# The main job on an example: compile matmul with its hand schedule, verify
# it against the interpreter and time it; tune a 256^3 matmul (64 trials,
# records in build/demo/kiln.db), run its best record, emit that tuned
# kernel as an object file, and link and check it from a plain C program.
MM256 = --param M=256 --param N=256 --param K=256
demo: build
	@mkdir -p $(BUILD)/demo && rm -f $(BUILD)/demo/kiln.db*
	./$(BUILD)/kiln run examples/matmul.yaml --schedule examples/matmul.sched
	./$(BUILD)/kiln tune examples/matmul.yaml $(MM256) --trials 64 --db $(BUILD)/demo/kiln.db
	./$(BUILD)/kiln run examples/matmul.yaml $(MM256) --db $(BUILD)/demo/kiln.db
	./$(BUILD)/kiln compile examples/matmul.yaml $(MM256) --db $(BUILD)/demo/kiln.db \
	  -o $(BUILD)/demo/matmul.o
	cc -O2 -DMM_SIZE=256 -I$(BUILD)/demo examples/use_matmul.c $(BUILD)/demo/matmul.o \
	  -lm -lpthread -o $(BUILD)/demo/use_matmul
	./$(BUILD)/demo/use_matmul

# Every test: the fuzzer (60 s), the suite under ASan+UBSan, then the suite
# in the release build (its ctest summary is the last line).
test: build build-asan build-fuzz
	bash tools/fuzz.sh build-fuzz/tests/fuzz_parse 60
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -E cli_memory
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: build
	@bash tools/install-deps.sh libopenblas-dev libdnnl-dev
	bash bench/run.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
