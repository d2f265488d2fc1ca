#!/usr/bin/env bash
# Notifications of stale and failed backups (docs/OPERATIONS.md,
# "Notifications"): a client that never backed up is reported stale, one
# whose backup fails is reported failed with the agent's reason, and one
# that backs up again is reported recovered, by the notify_command hook
# (environment + message on stdin) and by e-mail through sendmail; an
# admin token that never backed up is nobody's machine and is never
# reported. /metrics shows each client's state and the counts. A restart
# repeats nothing; a hook that hangs is killed after notify_timeout and
# counted, and the server keeps serving.
. "$(dirname "$0")/lib.sh"

R=$T/repo
repo_init "$R"
A=$(token_add "$R" alice)
token_add "$R" idle > /dev/null
ADM=$(token_add "$R" boss --admin)
mkdir -p "$T/src" "$T/hooks"
prand notify-src 200000 > "$T/src/data.bin"

cat > "$T/hooks/hook.sh" <<SH
#!/bin/sh
cat > "$T/msg.\$DEDUP_CLIENT.\$DEDUP_EVENT"
env | grep '^DEDUP_' | sort > "$T/env.\$DEDUP_CLIENT.\$DEDUP_EVENT"
echo "\$DEDUP_EVENT \$DEDUP_CLIENT" >> "$T/events"   # last: the test waits for it
SH
cat > "$T/hooks/sendmail" <<SH
#!/bin/sh
cat > "$T/mail.tmp.\$\$"
echo "\$*" > "$T/mail.args"
{ cat "$T/mail.tmp.\$\$"; echo "----"; } >> "$T/mail.out"
rm -f "$T/mail.tmp.\$\$"
SH
printf '#!/bin/sh\nexec sleep 30\n' > "$T/hooks/slow.sh"
chmod +x "$T/hooks/"*
: > "$T/events"

# wait_event "EVENT CLIENT": bounded wait (15 s) for that line.
wait_event() {
	local i
	for i in $(seq 1 150); do
		grep -qx "$1" "$T/events" && return 0
		sleep 0.1
	done
	return 1
}
# wait_lines FILE N: bounded wait (15 s) for FILE to have N lines.
wait_lines() {
	local i
	for i in $(seq 1 150); do
		[ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
NOTIFY=(--set notify_command="$T/hooks/hook.sh" --set notify_email=ops@example.org
	--set sendmail="$T/hooks/sendmail" --set notify_interval=1s --set notify_repeat=0)

check "a notify_interval of 0 is refused" not "$SERVER" serve --config /dev/null --repo "$R" \
	--listen 127.0.0.1:0 --set notify_interval=0
server_start "$R" "${NOTIFY[@]}" || exit 1
check "a client that never backed up is reported stale" wait_event "stale idle"
check "so is alice, before her first backup" wait_event "stale alice"
check "the hook's message says so" grep -q "client idle has never backed up" "$T/msg.idle.stale"
check "the hook gets DEDUP_EVENT, DEDUP_CLIENT and DEDUP_REPO" \
	grep -qx "DEDUP_REPO=$R" "$T/env.idle.stale"
check_eq "the hook's DEDUP_CLIENT" "DEDUP_CLIENT=idle" "$(grep '^DEDUP_CLIENT=' "$T/env.idle.stale")"
wait_mail() { local i; for i in $(seq 1 150); do [ "$(grep -c '^----$' "$T/mail.out" 2>/dev/null)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
check "two e-mails were sent (idle, alice)" wait_mail 2
check "an e-mail went through sendmail -t" grep -qx -- "-t -oi" "$T/mail.args"
check "addressed and with a subject" grep -q "^Subject: dedup: client idle has never backed up" "$T/mail.out"
check "to the configured address" grep -qx "To: ops@example.org" "$T/mail.out"

out=$(agent "$A" backup --json "$T/src")
check "alice backs up" test -n "$(json_get "$out" snapshot_id)"
check "alice is reported recovered" wait_event "recovered alice"
check "the recovery message" grep -q "client alice backs up again" "$T/msg.alice.recovered"

# A backup that gives up: open a session, report failure.
SID=$(json_get "$(api "$A" POST /api/v1/sessions -H 'Content-Type: application/json' \
	-d '{"host": "h", "paths": ["/x"]}' | head -n -1)" id)
check "a session opens" test -n "$SID"
check_eq "the agent reports the failure" 200 "$(api_status "$A" POST "/api/v1/sessions/$SID" \
	-H 'Content-Type: application/json' -d '{"state": "failed", "error": "disk on fire"}')"
check "alice is reported failed" wait_event "failed alice"
check "with the agent's reason in DEDUP_DETAIL" grep -qx "DEDUP_DETAIL=disk on fire" "$T/env.alice.failed"
check "and in the message" grep -q "disk on fire" "$T/msg.alice.failed"

M=$(api "$ADM" GET /metrics)
check "metrics: idle is stale" grep -qx 'dedup_client_stale{client="idle"} 1' <<<"$M"
check "metrics: alice is not stale" grep -qx 'dedup_client_stale{client="alice"} 0' <<<"$M"
check "metrics: alice's last backup failed" grep -qx 'dedup_client_last_backup_failed{client="alice"} 1' <<<"$M"
check "metrics: the admin that never backed up has no state" not grep -q 'client="boss"' <<<"$(grep '^dedup_client_stale' <<<"$M")"
check "metrics: 2 stale notifications" grep -qx 'dedup_notifications_total{event="stale"} 2' <<<"$M"
check "metrics: 1 failed notification" grep -qx 'dedup_notifications_total{event="failed"} 1' <<<"$M"
check "metrics: 1 recovered notification" grep -qx 'dedup_notifications_total{event="recovered"} 1' <<<"$M"
check "the admin was never reported" not grep -q " boss$" "$T/events"
check_eq "4 events so far" 4 "$(wc -l < "$T/events")"
check "notify.json is private" test "$(stat -c %a "$R/notify.json")" = 600
server_stop

# A restart repeats nothing: the failure stands (results are not kept
# across restarts) until a backup succeeds, which is then the only event.
server_start "$R" "${NOTIFY[@]}" || exit 1
agent "$A" backup --json "$T/src" > /dev/null
check "after a restart alice's success is reported (a 5th event)" wait_lines "$T/events" 5
check_eq "and nothing was told twice (5 events)" 5 "$(wc -l < "$T/events")"
check_eq "the last event is alice's recovery" "recovered alice" "$(tail -n1 "$T/events")"
server_stop

# A hook that hangs is killed after notify_timeout and counted; the
# server keeps serving meanwhile.
rm -f "$R/notify.json"
server_start "$R" --set notify_command="$T/hooks/slow.sh" --set notify_interval=1s \
	--set notify_timeout=1s || exit 1
t0=$(date +%s.%N)
check_eq "the server answers while hooks hang" 200 "$(api_status "$ADM" GET /api/v1/health)"
fails=0
for i in $(seq 1 100); do
	fails=$(api "$ADM" GET /metrics | sed -n 's/^dedup_notify_hook_failures \([0-9]*\)$/\1/p')
	[ "${fails:-0}" -ge 1 ] && break
	sleep 0.1
done
check "the hung hook was killed and counted (${fails:-0})" test "${fails:-0}" -ge 1
check "the kill is logged" grep -q "ran past 1 s: killed" "$T/server.log"
check_eq "the server still serves" 200 "$(api_status "$ADM" GET /api/v1/health)"
server_stop
check_eq "and stops cleanly" 0 "$SERVER_RC"
finish
