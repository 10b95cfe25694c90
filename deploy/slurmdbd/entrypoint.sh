#!/bin/sh
# Start munged (the key is mounted read-only), then slurmdbd in the foreground.
set -e
install -d -o munge -g munge -m 0755 /run/munge
runuser -u munge -- munged --key-file=/etc/munge/munge.key
exec slurmdbd -D
