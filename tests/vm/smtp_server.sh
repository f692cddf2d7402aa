#!/bin/busybox sh
# A minimal SMTP server for one connection, run by `busybox nc -ll -e`:
# stdin/stdout are the socket. It answers each command as a real server
# would (220 greeting, 250 to EHLO/MAIL/RCPT, 354 to DATA, 250 after the
# ending ".", 221 to QUIT), so the client speaks in lockstep and the capture
# sees a genuine command sequence. It accepts anything: the test is about
# what leaves the client, not about the server.
printf '220 sink.vmtest.example ESMTP\r\n'
in_data=0
while IFS= read -r line; do
	line=${line%"$(printf '\r')"}
	if [ "$in_data" = 1 ]; then
		[ "$line" = . ] && { in_data=0; printf '250 2.0.0 queued\r\n'; }
		continue
	fi
	verb=$(printf '%s' "$line" | cut -c1-4 | tr '[:lower:]' '[:upper:]')
	case $verb in
	EHLO) printf '250-sink.vmtest.example\r\n250 PIPELINING\r\n' ;;
	HELO|MAIL|RCPT|RSET|NOOP) printf '250 2.0.0 ok\r\n' ;;
	DATA) in_data=1; printf '354 go ahead\r\n' ;;
	QUIT) printf '221 2.0.0 bye\r\n'; exit 0 ;;
	*) printf '500 5.5.2 unknown command\r\n' ;;
	esac
done
