# Retention: planning 100,000 backups (and 200,000, to show memory grows linearly), through
# `pgtier policy simulate`, which generates the nightly history and plans it as of the last.
if want retention; then
  echo "retention:" >&2
  measure plan_100k env PGTIER_LOG=pgtier=info "$PGTIER" policy simulate default --days 100000 --json --now 2025-06-30T12:00:00Z
  measure plan_200k env PGTIER_LOG=pgtier=info "$PGTIER" policy simulate default --days 200000 --json --now 2025-06-30T12:00:00Z
  ms_100k=$(sed -n 's/.*planned 100000 backups in \([0-9.]*\) ms.*/\1/p' "$WORK/plan_100k.err")
  ms_200k=$(sed -n 's/.*planned 200000 backups in \([0-9.]*\) ms.*/\1/p' "$WORK/plan_200k.err")
  # The same count of backups an hour apart (4167 days × 24), through the hourly tier.
  measure plan_hourly env PGTIER_LOG=pgtier=info "$PGTIER" policy simulate hourly --every 1h --days 4167 --json --now 2025-06-30T12:00:00Z
  ms_hourly=$(sed -n 's/.*planned \([0-9]*\) backups in \([0-9.]*\) ms.*/\2 ms for \1/p' "$WORK/plan_hourly.err")
  row "planning 100,000 backups (\`policy simulate --days 100000\`)" "$ms_100k ms to plan (whole command ${WALL[plan_100k]} s with JSON output)" "peak RSS ${RSS[plan_100k]} KiB; 200,000: $ms_200k ms, ${RSS[plan_200k]} KiB" "< 200 ms, memory linear"
  row "planning 100,000 hourly backups (\`policy simulate --every 1h --days 4167\`, hourly, daily, weekly and monthly tiers)" "$ms_hourly backups (whole command ${WALL[plan_hourly]} s with JSON output)" "peak RSS ${RSS[plan_hourly]} KiB" "< 200 ms"
fi
