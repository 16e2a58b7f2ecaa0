# One task runner. `make run` serves; `make test` is what CI runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TS     := clients/typescript
# Node.js is needed only for the TypeScript client; `make run` works without it.
NPM    := $(shell command -v npm 2>/dev/null)

.PHONY: run test check lint typecheck generate check-generated buf-lint buf-breaking rest-config bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml $(TS)/package-lock.json
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e clients/python
	$(if $(NPM),cd $(TS) && npm ci --no-audit --no-fund --loglevel=error,@echo "npm not found: the TypeScript client is skipped")
	touch $(STAMP)

## run: set everything up and serve (embedded Postgres and Redis unless SMSGW_*_URL are set)
run: $(STAMP) generate
	$(BIN)/smsgw serve

## test: every check CI runs, then the whole test suite
test: $(STAMP) check
	$(BIN)/python -m pytest -p no:cacheprovider

check: check-generated buf-lint buf-breaking lint typecheck

generate: $(STAMP)
	$(BIN)/python scripts/generate.py
	$(if $(NPM),$(BIN)/buf generate --template $(TS)/buf.gen.yaml --path protos/ghasi --path third_party/googleapis/google/rpc/error_details.proto,)

GENERATED := server/smsgw/proto clients/python/src/ghasi_sms_client/_proto \
	clients/python/src/ghasi_sms_client/dataclasses docs/openapi.json $(TS)/src/gen

check-generated: generate
	@git diff --quiet --exit-code -- $(GENERATED) || \
		(echo "generated code is stale: run 'make generate' and commit"; git diff --stat -- $(GENERATED); exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || \
		(echo "generated files are not committed:"; git status --porcelain -- $(GENERATED); exit 1)

buf-lint: $(STAMP)
	$(BIN)/buf lint

# The contract may only change compatibly: compare with the previous commit.
buf-breaking: $(STAMP)
	@if git cat-file -e HEAD~1:protos 2>/dev/null; then \
		$(BIN)/buf breaking --against '.git#ref=HEAD~1'; \
	else echo "buf breaking: no previous contract to compare with"; fi

## migrations-manifest: record new migrations' checksums in migrations/manifest.sha256
.PHONY: migrations-manifest
migrations-manifest: $(STAMP)
	$(BIN)/python scripts/migrations_manifest.py

lint: $(STAMP)
	$(BIN)/ruff check server clients/python scripts tests

typecheck: $(STAMP)
	$(BIN)/mypy

## rest-config: Envoy's config and descriptor set, for running the REST proxy as a sidecar
rest-config: $(STAMP)
	$(BIN)/smsgw rest-config build/rest

## bench: measure a running gateway (see docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/smsgw bench

clean:
	rm -rf $(VENV) .smsgw-data .pytest_cache .mypy_cache .ruff_cache
