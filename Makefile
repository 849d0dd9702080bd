# hsmkit: five Unix-style commands for CloudHSM user management.
GO ?= go
BIN ?= bin
PREFIX ?= /usr/local
CMDS := hsm-sim hsm-user hsm-quorum hsm-sign hsm-sync hsm-key cloudhsm-cli hsm-kms lunash lunacm
FUZZTIME ?= 10s

.PHONY: build test lint demo bench bench-report fuzz install install-cloudhsm-cli vet clean man examples

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(notdir $(wildcard $(addprefix cmd/,$(CMDS)))))

# The tests CI runs: vet, every package, every testscript scenario, and
# the example module that tests scripts as a user of hsmkit would.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 45m ./...
	$(MAKE) --no-print-directory examples

# examples/testscript is a module of its own (go.mod replaces hsmkit with
# this checkout): its scenarios run the commands through the public testkit.
examples:
	cd examples/testscript && $(GO) vet ./... && $(GO) test -count=1 ./...

# man/<command>.1 for every command, generated from its definitions (not
# committed: they would only drift from the code; see docs/design.md).
man:
	$(GO) run ./internal/genman -o man

# gofmt and staticcheck (installed into GOPATH/bin when missing).
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
lint:
	@test -z "$$(gofmt -l cmd internal testkit examples *.go)" || { gofmt -l cmd internal testkit examples *.go; echo "gofmt: the files above need formatting" >&2; exit 1; }
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

demo: build
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2x ./...

# Every fuzz target for FUZZTIME each (a duration, or a count like 30000x).
fuzz:
	@GO="$(GO)" FUZZTIME="$(FUZZTIME)" bash scripts/fuzz.sh

install:
	$(GO) install $(addprefix ./cmd/,$(notdir $(wildcard $(addprefix cmd/,$(CMDS)))))

# cloudhsm-cli where scripts for real clusters look for it:
# make install-cloudhsm-cli PREFIX=/opt/cloudhsm puts it at /opt/cloudhsm/bin/cloudhsm-cli.
install-cloudhsm-cli:
	@mkdir -p $(PREFIX)/bin
	$(GO) build -o $(PREFIX)/bin/cloudhsm-cli ./cmd/cloudhsm-cli

clean:
	rm -rf $(BIN) man

# Measures everything side by side in one run; writes docs/performance.md
# (a few minutes; RUNS=N timed runs per figure, 21 by default; QUICK=1
# leaves out hsm-sync diff on 28 HSMs x 100,000 users, 1.5 GB of set-up).
bench-report:
	$(GO) run ./internal/benchreport -o docs/performance.md $(if $(RUNS),-runs $(RUNS)) $(if $(QUICK),-quick)
