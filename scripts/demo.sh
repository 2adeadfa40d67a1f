#!/usr/bin/env bash
# make demo: three Meridian sites on loopback converge in front of you.
# Everything lives in a temporary directory that is removed at the end.
set -euo pipefail
BIN=${BIN:-bin/meridian}
TMP=$(mktemp -d -t meridian-demo-XXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
m() { "$BIN" "$@"; }
wait_file() { for _ in $(seq 1 200); do [ -f "$1" ] && return 0; sleep 0.05; done; echo "timed out waiting for $1"; exit 1; }
digest() { m status --data "$TMP/$1" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(" ".join(d["digest"]+" "+d["version_vector"] for d in s["doctypes"] if d["doctype"]=="Item"))'; }
connected() { m status --data "$TMP/$1" --json | python3 -c 'import json,sys; print(sum(1 for p in json.load(sys.stdin)["peers"] if p["connected"]))'; }

bold "Three sites, each with its own data directory, on loopback"
for s in head-office branch plant; do
	m init --data "$TMP/$s" --listen /ip4/127.0.0.1/tcp/0 | sed -n 2p | sed "s/^/$s: /"
	MERIDIAN_SYNC_INTERVAL=1s m node --data "$TMP/$s" --api 127.0.0.1:0 >"$TMP/$s.log" 2>&1 &
	PIDS+=($!)
done
for s in head-office branch plant; do wait_file "$TMP/$s/api.addr"; done

bold "Join by multiaddr: branch is told head-office, plant is told branch"
HO=$(head -1 "$TMP/head-office/addrs")
BR=$(head -1 "$TMP/branch/addrs")
echo "meridian peers add $HO"
m peers add --data "$TMP/branch" "$HO"
m peers add --data "$TMP/plant" "$BR"
for _ in $(seq 1 100); do [ "$(connected head-office)" = 2 ] && [ "$(connected plant)" = 2 ] && break; sleep 0.1; done
echo "membership: head-office sees $(connected head-office) peers, plant sees $(connected plant) (it learnt head-office through memberlist)"

bold "Items written on head-office and branch at once; both change ITEM-0001's description before hearing of the other"
m doc put --data "$TMP/head-office" Item ITEM-0001 --json '{"item_name":"Hex bolt M8","stock_uom":"Nos","standard_rate":"0.35","barcodes":[{"barcode":"4006381333931"}]}' >/dev/null
sleep 0.5
m network pause --data "$TMP/branch"   # so that the two edits are truly concurrent
m doc put --data "$TMP/head-office" Item ITEM-0001 --json '{"description":"Zinc plated (head office)"}' >/dev/null &
w1=$!
m doc put --data "$TMP/branch" Item ITEM-0001 --json '{"description":"Galvanised (branch)"}' >/dev/null &
w2=$!
m doc put --data "$TMP/branch" Item ITEM-0002 --json '{"item_name":"Washer M8","stock_uom":"Nos"}' >/dev/null &
w3=$!
wait $w1 $w2 $w3
m network resume --data "$TMP/branch"
for _ in $(seq 1 100); do [ "$(digest head-office)" = "$(digest plant)" ] && [ "$(digest branch)" = "$(digest plant)" ] && break; sleep 0.1; done
echo "ITEM-0001 as the plant sees it:"
m doc get --data "$TMP/plant" Item ITEM-0001
echo
echo "the concurrent writes, as every site lists them:"
m conflicts --data "$TMP/plant"

bold "The plant is cut off; head-office and branch keep writing"
m network pause --data "$TMP/plant"
for i in $(seq 3 12); do m doc put --data "$TMP/head-office" Item "ITEM-$(printf %04d "$i")" --json "{\"item_name\":\"Part $i\"}" >/dev/null; done
m doc put --data "$TMP/branch" Item ITEM-0002 --json '{"standard_rate":"0.05"}' >/dev/null
sleep 0.5
printf "%-12s %s\n" head-office "$(digest head-office)" branch "$(digest branch)" plant "$(digest plant)"

bold "The plant reconnects and catches up through anti-entropy"
m network resume --data "$TMP/plant"
for _ in $(seq 1 150); do
	a=$(digest head-office); b=$(digest branch); c=$(digest plant)
	[ "$a" = "$b" ] && [ "$b" = "$c" ] && break
	sleep 0.2
done
printf "%-12s %s\n" head-office "$(digest head-office)" branch "$(digest branch)" plant "$(digest plant)"
if [ "$(digest head-office)" = "$(digest plant)" ] && [ "$(digest branch)" = "$(digest plant)" ]; then
	bold "Converged: all three sites hold the same masters (same digest, same version vector)"
else
	echo "NOT converged"; exit 1
fi
m doc list --data "$TMP/plant" Item | tr '\n' ' '; echo
