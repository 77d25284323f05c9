# countersign: two commands for a newcomer, `make run` and `make test`.
GO        ?= go
BIN       ?= bin/countersign
DATA      ?= ./data
ADDR      ?= 127.0.0.1:8080
FUZZTIME  ?= 30s

.PHONY: all build run test test-race bench bench-engine fuzz vet fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/countersign

# run creates ./data with a demo organization on first use, then serves.
run: build
	@if [ ! -d "$(DATA)" ]; then $(BIN) init --data "$(DATA)" --org demo --addr "$(ADDR)"; fi
	$(BIN) serve --data "$(DATA)" --addr "$(ADDR)"

# test is what CI runs: vet, the whole suite, then the suite again under the race detector.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./...

# bench builds the binary, starts a server on a temporary data directory
# (server on CPU 0 with GOMAXPROCS=1, load on CPU 1, durability sync), seeds
# it and runs the load suite: ceiling, validate closed loop, c=1, open loops
# at 50% and 80% of the maximum, events, the ceiling reading the same events
# posts, and whole transactions (session, 4 gzip events posts, validate)
# against the ceiling answering the same requests. Prints the table; JSON, Markdown and
# SVG land in bench/results/. 'bin/countersign bench --help' for the knobs.
bench: build
	$(BIN) bench --spawn --duration 8s --warmup 1s --out bench/results

# bench-engine runs the engine micro-benchmarks quoted in PERF.md.
bench-engine:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./engine/...

# fuzz runs every fuzz target for FUZZTIME each; new interesting inputs land in testdata/fuzz.
fuzz:
	@for pkg in ./engine/match ./engine/biometric ./engine/rules ./engine/approval; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin
