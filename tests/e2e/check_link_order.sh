#!/usr/bin/env bash
# ctest footprint.link_order: the daemons linked with a hot-code order (cmake/LinkOrder.cmake) must
# have their listed functions laid out in the listed order, and the lists must still match the code.
#   check_link_order.sh ORDER_DIR BINARY...
# For each binary with ORDER_DIR/<name>.txt (functions sorted by name):
#   - it was linked by ld.lld;
#   - at least half of the listed functions exist in it (otherwise the list is stale: regenerate it
#     with scripts/gen-link-order);
#   - of consecutive listed functions, at least 60 % lie at increasing addresses. lld places them in
#     the list's order (functions that share a section with an earlier one keep its place); a link
#     that ignored the list gives about 50 %.
set -euo pipefail
dir=$1
shift
status=0
for bin in "$@"; do
  name=$(basename "$bin")
  list="$dir/$name.txt"
  if [ ! -f "$list" ]; then
    echo "$name: no order list, not checked"
    continue
  fi
  if ! readelf -p .comment "$bin" | grep -q "LLD"; then
    echo "$name: FAILED: has an order list but was not linked by ld.lld" >&2
    status=1
    continue
  fi
  # nm -t d: address size type name in decimal (mawk has no hex conversion).
  if ! result=$(nm -S -t d --defined-only "$bin" | awk -v list="$list" '
      NF == 4 && $3 ~ /^[tTwW]$/ { addr[$4] = $1 + 0 }
      END {
        while ((getline s < list) > 0) {
          listed++
          if (!(s in addr)) continue
          found++
          if (found > 1 && addr[s] > prev) up++
          prev = addr[s]
        }
        printf "%d %d %d\n", found, listed, (found > 1 ? int(1000 * up / (found - 1)) : 0)
      }'); then
    echo "$name: FAILED: nm or awk failed" >&2
    status=1
    continue
  fi
  read -r found listed permille <<<"$result"
  echo "$name: $found of $listed listed functions present, $permille/1000 in the listed order"
  if [ $((found * 2)) -lt "$listed" ]; then
    echo "$name: FAILED: the order list is stale (fewer than half its functions exist); run scripts/gen-link-order" >&2
    status=1
  elif [ "$permille" -lt 600 ]; then
    echo "$name: FAILED: only $permille/1000 of the listed functions follow the list: the order was not applied" >&2
    status=1
  fi
done
exit $status
