#!/bin/busybox sh
# kpv guest wrapper around stress-ng, installed by pipeline/guest.py.
# usage: kpv-stress-ng STRESSOR SECONDS SEED
#
# Runs one instance per CPU of one stressor and turns stress-ng's YAML
# metrics into kpv's result line (pipeline/markers.py), with the /proc/vmstat
# deltas the reach checks read (pipeline/reach.py). Exits with stress-ng's
# status.

stressor=$1
seconds=$2
seed=$3
yaml=/tmp/stress-ng-$stressor.yaml
vm_keys="pgmigrate_success pgfault thp_split_pmd thp_fault_alloc numa_pages_migrated"

vmstat() {
	local k v
	for k in $vm_keys; do
		v=$(awk -v k="$k" '$1 == k { print $2 }' /proc/vmstat 2>/dev/null)
		echo "${v:-na}"
	done
}

# stress-ng sizes its work for real machines (the mmap stressor maps 256 MiB
# per instance); under TCG one such operation can outlast the whole test.
case $stressor in
mmap) sizes="--mmap-bytes 16M" ;;
vm) sizes="--vm-bytes 32M" ;;
bigheap) sizes="--bigheap-growth 16K" ;;
*) sizes= ;;
esac

before=$(vmstat)
# $sizes unquoted: it is zero or two words.
stress-ng --"$stressor" 0 $sizes --timeout "${seconds}s" --seed "$seed" --metrics-brief \
	--yaml "$yaml"
status=$?
after=$(vmstat)

# bogo-ops and the real-time rate of the stressor's metrics entry.
fields=$(awk -v s="$stressor" '
	/- stressor:/ { mine = ($3 == s) }
	mine && /bogo-ops:/ { ops = $2 }
	mine && /bogo-ops-per-second-real-time:/ { rate = $2 }
	mine && /wall-clock-time:/ { ms = int($2 * 1000) }
	END { printf "ops=%d ops_per_s=%.1f elapsed_ms=%d bogo_ops=%d", ops, rate, ms, ops }
' "$yaml" 2>/dev/null)
deltas=$(echo $before $after | awk -v keys="$vm_keys" '{
	n = split(keys, k, " ")
	for (i = 1; i <= n; i++) {
		a = $i; b = $(i + n)
		printf " vm_%s=%s", k[i], (a == "na" || b == "na") ? "na" : b - a
	}
}')
echo "@@kpv result stress-ng-$stressor ${fields:-ops=0} errors=0 check_failures=0" \
	"seed=$seed repeat=${KPV_REPEAT:-1} stress_ng_status=$status$deltas"
exit $status
