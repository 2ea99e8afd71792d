# The fleet view over 500 envs x 400 backups (a daily copy each, weekly and monthly copies of
# the first of each week and month, a manifest beside each: about 470,000 objects) in a file://
# store, against one `find` listing of the same tree; and over 50 envs, to show the memory does
# not grow with the fleet (one env in memory at a time). Sourced by bench/run.sh.
if want fleet; then
  echo "fleet:" >&2
  FLEET=$STATE/fleet
  # fake_fleet DIR ENVS BACKUPS: once per shape (kept in .state/bench).
  fake_fleet() {
    [ -f "$1/.done-$2x$3" ] && return 0
    rm -rf "$1"; mkdir -p "$1"
    python3 - "$1" "$2" "$3" <<'PY'
import datetime, hashlib, json, os, sys
root, envs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
end = datetime.datetime(2025, 6, 1, 2, tzinfo=datetime.timezone.utc)
for e in range(envs):
    project, env = f"project{e // 10:03d}", f"env{e % 10}"
    for tier in ("daily", "weekly", "monthly"):
        os.makedirs(f"{root}/{project}/{env}/{tier}", mode=0o700, exist_ok=True)
    for i in range(n):
        t = end - datetime.timedelta(days=n - 1 - i)
        stem = t.strftime("db_%Y%m%d_%H%M%S")
        body = stem.encode()
        tiers = ["daily"] + (["weekly"] if t.weekday() == 0 else []) + (["monthly"] if t.day == 1 else [])
        m = {"format_version": 1, "kind": "database", "project": project, "env": env, "database": env,
             "created_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "file": f"{stem}.dump.gz", "format": "custom",
             "compression": "gzip", "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "tiers": tiers}
        text = json.dumps(m)
        for tier in tiers:
            with open(f"{root}/{project}/{env}/{tier}/{stem}.dump.gz", "wb") as f: f.write(body)
            with open(f"{root}/{project}/{env}/{tier}/{stem}.json", "w") as f: f.write(text)
PY
    touch "$1/.done-$2x$3"
  }
  fake_fleet "$FLEET/500" 500 400
  fake_fleet "$FLEET/50" 50 400
  OBJECTS=$(find "$FLEET/500" -type f -not -name '.*' | wc -l)
  measure fleet_find find "$FLEET/500" -type f -printf '%s %p\n'
  measure fleet_500 "$PGTIER" fleet status --remote "file://$FLEET/500" --now 2025-06-01T03:00:00Z --json
  measure fleet_50 "$PGTIER" fleet status --remote "file://$FLEET/50" --now 2025-06-01T03:00:00Z --json
  ENVS=$(grep -o '"project"' "$WORK/fleet_500.out" | wc -l)
  row "\`fleet status\` over 500 envs × 400 backups ($OBJECTS objects, file://) vs one \`find\` listing of the tree" "$(ratio "${WALL[fleet_500]}" "${WALL[fleet_find]}")× wall (${WALL[fleet_500]} s vs ${WALL[fleet_find]} s), $ENVS envs reported" "peak RSS ${RSS[fleet_500]} KiB; 50 envs: ${RSS[fleet_50]} KiB, ${WALL[fleet_50]} s" "one listing; memory bounded (not growing with the envs)"
fi
