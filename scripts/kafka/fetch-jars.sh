#!/usr/bin/env bash
# Fetch the jars of a runnable Apache Kafka broker (KRaft) for the test suite.
#
# No registry we can reach ships a Kafka broker, but Maven Central has Kafka itself: Maven
# resolves kafka_2.13 plus the SLF4J->log4j2 binding listed in scripts/kafka/pom.xml and
# copies the runtime jars to $FQM_CACHE/kafka/$FQM_KAFKA_VERSION/libs. Both the jars and
# Maven's local repository ($FQM_CACHE/m2) live outside the clone, so a fresh clone or a
# CI run reuses them. tests/support/kafka_broker.py starts the broker from that folder.
#
# Idempotent: a second run finds the stamp and returns at once. The jars are fetched into a
# temporary folder that is renamed into place only after the stamp is written, so an
# interrupted fetch never looks complete. Prints the libs folder on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../common.sh
source "$ROOT/scripts/common.sh"

POM="$ROOT/scripts/kafka/pom.xml"
DEST="$FQM_CACHE/kafka/$FQM_KAFKA_VERSION"
LIBS="$DEST/libs"
STAMP="$DEST/fetched.stamp"
M2="$FQM_CACHE/m2"

# The stamp names the Kafka version and the pom it was fetched with: editing the pom (say,
# another log4j binding) makes the next run fetch again instead of reusing stale jars.
pom_sum="$(sha256sum "$POM" | cut -d' ' -f1)"
want_stamp="kafka=$FQM_KAFKA_VERSION pom-sha256=$pom_sum"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]]; then
    log "Kafka $FQM_KAFKA_VERSION jars already in $LIBS"
    printf '%s\n' "$LIBS"
    exit 0
fi

command -v mvn >/dev/null || die "mvn not found: install Maven 3.8+ (Debian package 'maven')"
command -v java >/dev/null || die "java not found: install a Java 17+ runtime"

mkdir -p "$FQM_CACHE/kafka"
TMP="$(mktemp -d "$FQM_CACHE/kafka/.fetch-$FQM_KAFKA_VERSION.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT   # so that Ctrl-C and kill also run the EXIT trap
trap 'exit 143' TERM

# Run Maven on a copy of the pom so that nothing it writes lands in the clone. Its output goes
# to stderr (stdout is for the libs path), less the bare colour resets that Debian's Maven
# 3.8 prints even with -B -q; pipefail keeps Maven's exit status.
cp "$POM" "$TMP/pom.xml"
log "fetching Kafka $FQM_KAFKA_VERSION jars from Maven Central (Maven repo: $M2)"
mvn -B -q -f "$TMP/pom.xml" \
    -Dmaven.repo.local="$M2" \
    -Dkafka.version="$FQM_KAFKA_VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$TMP/libs" 2>&1 \
    | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2 \
    || die "Maven could not fetch Kafka $FQM_KAFKA_VERSION (is that version on Maven Central?)"

compgen -G "$TMP/libs/kafka_2.13-$FQM_KAFKA_VERSION.jar" >/dev/null \
    || die "Maven finished but kafka_2.13-$FQM_KAFKA_VERSION.jar is missing from $TMP/libs"
compgen -G "$TMP/libs/log4j-slf4j-impl-*.jar" >/dev/null \
    || die "Maven finished but the SLF4J binding (log4j-slf4j-impl) is missing from $TMP/libs"
rm -f "$TMP/pom.xml"
rm -rf "$TMP/target"
printf '%s\n' "$want_stamp" >"$TMP/fetched.stamp"

# Replace an older or incomplete copy, then move the finished one into place in one rename.
if [[ -e "$DEST" ]]; then
    log "replacing the previous jars in $DEST"
    rm -rf "$DEST"
fi
if ! mv -T "$TMP" "$DEST" 2>/dev/null; then
    # Another fetch finished first; its copy is as good as ours.
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
        || die "could not move the jars into $DEST"
    log "another fetch put Kafka $FQM_KAFKA_VERSION in $LIBS first; using it"
    printf '%s\n' "$LIBS"
    exit 0
fi
trap - EXIT

count="$(find "$LIBS" -name '*.jar' | wc -l)"
size="$(du -sh "$LIBS" | cut -f1)"
log "Kafka $FQM_KAFKA_VERSION: $count jars ($size) in $LIBS"
printf '%s\n' "$LIBS"
