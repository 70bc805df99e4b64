# Makefile for refund_rules (PGXS)

EXTENSION = refund_rules
MODULE_big = refund_rules
OBJS = refund_rules.o catalog.o purchase.o query.o support.o report.o trigger.o \
	request.o protect.o validate.o
DATA = $(sort $(wildcard refund_rules--*.sql))
PGFILEDESC = "refund_rules - refund eligibility for MPN benefit purchases"

# One pg_regress test per file in sql/, one isolation test per file in specs/.
# The expected output has non-ASCII text: the test database is UTF8 even where
# the cluster's default is SQL_ASCII (Debian's cluster on a machine with no locale).
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=refund_rules --encoding=UTF8
ISOLATION = $(patsubst specs/%.spec,%,$(sort $(wildcard specs/*.spec)))
ISOLATION_OPTS = --load-extension=refund_rules
# What needs a cluster of its own (dump/restore, upgrades, memory, shards):
# t/*.pl, PostgreSQL::Test::Cluster, run by prove_installcheck.
TAP_TESTS = 1

# The build uses PGXS's defaults; CI (scripts/test.sh) adds
# PG_CFLAGS='-Wall -Wextra -Werror' on its own command line.
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: every object follows the shared header.
$(OBJS): refund_rules.h
