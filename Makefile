# emperor: two commands on a fresh Debian machine.
#   make run    build, then run the Emperor on examples/vassals
#   make test   install what tests need, build, run every test (race on)
#   make bench  the Emperor and uwsgi --emperor side by side
#   make faults the fault suite: what breaks, what must hold, the figures

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := $(CURDIR)/bin

.PHONY: all build run test unit fuzz bench faults setup setup-test clean

all: build

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh test

build: setup
	$(GO) build -o $(BIN)/emperor ./cmd/emperor
	$(GO) build -o $(BIN)/vassal ./cmd/vassal
	$(GO) build -o $(BIN)/hello ./examples/apps/hello

run: build
	$(BIN)/emperor --ini examples/emperor.ini

test: setup-test build
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...
	$(GO) run ./faults -bin $(BIN) -short
	$(MAKE) --no-print-directory fuzz

# Each fuzz target runs briefly: enough to catch a regression on the seeds
# and a little beyond. The budget is a count of executions, not a duration:
# Go 1.26's coordinator can fail a target with "context deadline exceeded" at
# the end of a -fuzztime duration on a loaded machine, with no failing input
# (golang/go#75804, fixed in Go 1.27). A real failure prints its input.
FUZZTIME ?= 20000x
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			out=$$($(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
		done; \
	done

# The fault suite: breaks things on purpose and prints what held, with the
# figures; the table is also written to faults/RESULTS.md, which the README
# quotes. make test runs its short version.
faults: setup-test build
	$(GO) run ./faults -bin $(BIN) -out faults/RESULTS.md

bench: setup-test build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) build -o $(BIN)/emperor-bench ./bench
	$(BIN)/emperor-bench -emperor $(BIN)/emperor -vassal $(BIN)/vassal -hello $(BIN)/hello

clean:
	rm -rf $(BIN)
