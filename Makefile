# The two commands a new user needs: `make demo` and `make test`.
# Both install what is missing (scripts/install-deps), configure CMake out of tree
# in build/ (Release) and build; then run the demo or the whole suite.

BUILD ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build demo test test-asan bench fuzz fuzz-smoke install package clean

all: build

deps:
	@scripts/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

demo: build
	@scripts/demo $(BUILD)

test: build
	@cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 600

test-asan:
	@$(MAKE) test BUILD=build-asan BUILD_TYPE=RelWithDebInfo CMAKE_FLAGS=-DVDISK_SANITIZE=ON

bench: build
	@bench/run $(BUILD)

# libFuzzer targets (clang, ASan+UBSan) in build-fuzz/; fuzz-smoke runs each
# for FUZZ_SECONDS (default 30) from seeds made by the tests' oracles.
FUZZ_SECONDS ?= 30
fuzz:
	@scripts/install-deps fuzz
	@cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVDISK_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

fuzz-smoke: build fuzz
	@scripts/fuzz-smoke $(BUILD) build-fuzz $(FUZZ_SECONDS)

# make install [PREFIX=/usr/local] [DESTDIR=staging]: the binary, vdisk(1),
# bash and zsh completion, libvdisk (static library, headers, pkg-config).
PREFIX ?= /usr/local
install: build
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

# make package: a Debian package of the same files under /usr (CPack), in $(BUILD).
package: build
	@cd $(BUILD) && cpack -G DEB

clean:
	rm -rf $(BUILD) build-asan build-fuzz
