#!/bin/sh
# ocore post-receive hook: tells ocore about pushes to a plain git server.
#
# Install in the bare repository on the git server:
#   cp post-receive.sh /srv/git/addons.git/hooks/post-receive
#   chmod 755 /srv/git/addons.git/hooks/post-receive
#   git -C /srv/git/addons.git config ocore.webhookUrl https://ocore.example.com/api/...
#   git -C /srv/git/addons.git config ocore.webhookSecretFile /srv/git/addons.ocore-secret
# The secret file holds the project's webhook secret; make it readable by
# the git user only (chmod 600). It is read from a file, never passed on a
# command line, where other users could see it in the process list.
#
# For each pushed branch it POSTs JSON {ref, before, after, commits} with
# headers X-Ocore-Event: push, X-Ocore-Delivery: <uuid> and
# X-Ocore-Signature: sha256=<HMAC-SHA256 of the body with the secret>.
# Needs git and python3 (JSON and HMAC are not safely done in sh). A failed
# delivery is reported to the pusher; the push itself has already succeeded.

url=$(git config --get ocore.webhookUrl) || {
	echo "ocore: ocore.webhookUrl is not set; ocore was not notified" >&2
	exit 0
}
secret_file=$(git config --get ocore.webhookSecretFile) || {
	echo "ocore: ocore.webhookSecretFile is not set; ocore was not notified" >&2
	exit 0
}
command -v python3 >/dev/null 2>&1 || {
	echo "ocore: python3 is missing on the git server; ocore was not notified" >&2
	exit 0
}

# The hook's stdin (one "old new ref" line per ref) is handed over in the
# environment: python3 reads its program from the here-document on stdin.
OCORE_REFS=$(cat)
export OCORE_REFS
OCORE_URL=$url OCORE_SECRET_FILE=$secret_file python3 - <<'PYTHON'
import hashlib, hmac, json, os, subprocess, sys, urllib.request, uuid

MAX_COMMITS = 100


def git(*args):
    return subprocess.run(["git", *args], check=True, capture_output=True).stdout


def commits(old, new, ref):
    if new.strip("0") == "":
        return []
    if old.strip("0") == "":
        # A new branch: its commits that no other ref already had. Not --all:
        # that includes HEAD, which may be this very branch. Ref names cannot
        # hold glob characters, so the ref is matched literally.
        span = [new, "--not", "--exclude=" + ref, "--glob=refs/*"]
    else:
        span = [old + ".." + new]
    # Both ids come from git itself (hex), so neither can read as an option.
    out = git("log", "-z", "--max-count=%d" % MAX_COMMITS,
              "--format=%H%x1f%an%x1f%ae%x1f%cI%x1f%B", *span)
    found = []
    for record in out.split(b"\0"):
        fields = record.decode("utf-8", "replace").lstrip("\n").split("\x1f", 4)
        if len(fields) == 5:
            sha, name, email, when, message = fields
            found.append({"id": sha, "message": message.rstrip("\n"), "timestamp": when,
                          "author": {"name": name, "email": email}})
    return found


try:
    with open(os.environ["OCORE_SECRET_FILE"], "rb") as handle:
        secret = handle.read().strip()
except OSError as exc:
    print("ocore: cannot read the webhook secret: %s" % exc, file=sys.stderr)
    sys.exit(0)

for line in os.environ.get("OCORE_REFS", "").splitlines():
    parts = line.split()
    if len(parts) != 3 or not parts[2].startswith("refs/heads/"):
        continue
    old, new, ref = parts
    try:
        payload = {"ref": ref, "before": old, "after": new, "commits": commits(old, new, ref)}
    except subprocess.CalledProcessError as exc:
        print("ocore: git log failed for %s: %s" % (ref, exc.stderr.decode(errors="replace")),
              file=sys.stderr)
        continue
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(os.environ["OCORE_URL"], data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "ocore-post-receive",
        "X-Ocore-Event": "push",
        "X-Ocore-Delivery": str(uuid.uuid4()),
        "X-Ocore-Signature": signature,
    })
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            print("ocore: notified about %s (%s)" % (ref, response.status), file=sys.stderr)
    except Exception as exc:
        print("ocore: notifying about %s failed: %s" % (ref, exc), file=sys.stderr)
PYTHON
exit 0
