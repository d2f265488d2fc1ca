#!/usr/bin/env python3
"""lint-units.py - a small lint of systemd unit files, for machines without
systemd-analyze. Checks the syntax (sections, `Key=value` lines,
continuations), that every section and key is one this project uses and
systemd 252 knows, that required keys are there, that commands are absolute
paths, and that the server unit keeps its hardening.

    python3 packaging/lint-units.py UNIT...

Prints one line per problem and exits 1 if there was any.
"""
import os
import re
import sys

# Keys systemd (252) accepts in each section, limited to those a unit of
# this project may reasonably use; an unknown key is most likely a typo.
KNOWN = {
    "Unit": {
        "Description", "Documentation", "After", "Before", "Wants",
        "Requires", "BindsTo", "PartOf", "Conflicts", "ConditionPathExists",
        "AssertPathExists", "StartLimitIntervalSec", "StartLimitBurst",
    },
    "Service": {
        "Type", "User", "Group", "ExecStart", "ExecStartPre", "ExecStop",
        "ExecReload", "KillMode", "KillSignal", "TimeoutStopSec",
        "TimeoutStartSec", "Restart", "RestartSec", "UMask", "LimitNOFILE",
        "Environment", "EnvironmentFile", "StateDirectory",
        "StateDirectoryMode", "RuntimeDirectory", "ReadWritePaths",
        "ReadOnlyPaths", "ProtectSystem", "ProtectHome", "PrivateTmp",
        "PrivateDevices", "NoNewPrivileges", "CapabilityBoundingSet",
        "AmbientCapabilities", "ProtectKernelTunables",
        "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
        "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
        "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
        "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute",
        "RemoveIPC", "SystemCallArchitectures", "SystemCallFilter",
        "SystemCallErrorNumber", "Nice", "IOSchedulingClass",
        "IOSchedulingPriority", "CPUSchedulingPolicy", "SuccessExitStatus",
        "WorkingDirectory",
    },
    "Timer": {
        "OnCalendar", "OnBootSec", "OnUnitActiveSec", "RandomizedDelaySec",
        "Persistent", "AccuracySec", "Unit",
    },
    "Install": {"WantedBy", "RequiredBy", "Alias", "Also"},
}
# Keys that may appear more than once (lists, or resets with an empty value).
REPEATABLE = {
    "After", "Before", "Wants", "Requires", "Documentation", "Environment",
    "EnvironmentFile", "ExecStartPre", "ReadWritePaths", "ReadOnlyPaths",
    "SystemCallFilter", "CapabilityBoundingSet", "AmbientCapabilities",
    "RestrictAddressFamilies", "WantedBy", "SuccessExitStatus",
}
BOOL = {"yes", "no", "true", "false", "on", "off", "1", "0"}
BOOL_KEYS = {
    "PrivateTmp", "PrivateDevices", "NoNewPrivileges",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname",
    "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
    "MemoryDenyWriteExecute", "RemoveIPC", "Persistent",
}
ENUMS = {
    "Type": {"simple", "exec", "forking", "oneshot", "notify", "dbus", "idle"},
    "Restart": {"no", "on-success", "on-failure", "on-abnormal",
                "on-watchdog", "on-abort", "always"},
    "ProtectSystem": {"yes", "no", "full", "strict"},
    "ProtectHome": {"yes", "no", "read-only", "tmpfs"},
    "ProtectProc": {"noaccess", "invisible", "ptraceable", "default"},
    "ProcSubset": {"all", "pid"},
    "KillMode": {"control-group", "mixed", "process", "none"},
    "IOSchedulingClass": {"realtime", "best-effort", "idle", "0", "1", "2",
                          "3"},
}
# What the server's unit must keep (issue 7: hardened, own user).
SERVER_MUST = {
    "User": "dedup", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/dedup",
}


def lint(path):
    problems = []
    kind = os.path.splitext(path)[1].lstrip(".")
    sections = {}
    section = None
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        n = i + 1
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i]
        i += 1
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", s)
        if m:
            section = m.group(1)
            if section not in KNOWN:
                problems.append("%s:%d: unknown section [%s]" % (path, n, section))
            if section in sections:
                problems.append("%s:%d: section [%s] repeated" % (path, n, section))
            sections.setdefault(section, {})
            continue
        m = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)", s)
        if not m:
            problems.append("%s:%d: not a Key=value line: %r" % (path, n, s))
            continue
        if section is None:
            problems.append("%s:%d: key outside any section" % (path, n))
            continue
        key, value = m.group(1), m.group(2)
        if section in KNOWN and key not in KNOWN[section]:
            problems.append("%s:%d: unknown key %s= in [%s]" % (path, n, key, section))
        have = sections[section]
        if key in have and key not in REPEATABLE:
            problems.append("%s:%d: %s= given twice" % (path, n, key))
        have.setdefault(key, []).append(value)
        if key in BOOL_KEYS and value.lower() not in BOOL:
            problems.append("%s:%d: %s= wants a boolean, not %r" % (path, n, key, value))
        if key in ENUMS and value not in ENUMS[key]:
            problems.append("%s:%d: %s=%s is not one of %s" % (path, n, key, value, sorted(ENUMS[key])))
        if key.startswith("Exec"):
            cmd = value.lstrip("-@:+!")
            if not cmd.startswith("/"):
                problems.append("%s:%d: %s= needs an absolute path" % (path, n, key))
        if key == "Environment" and not re.fullmatch(r'"?[A-Za-z_][A-Za-z0-9_]*=.*', value):
            problems.append("%s:%d: Environment= wants NAME=value" % (path, n))

    unit = sections.get("Unit", {})
    if "Description" not in unit:
        problems.append("%s: [Unit] has no Description=" % path)
    if kind == "service":
        svc = sections.get("Service")
        if svc is None:
            problems.append("%s: no [Service] section" % path)
        elif "ExecStart" not in svc:
            problems.append("%s: [Service] has no ExecStart=" % path)
        if os.path.basename(path).startswith("dedup-server"):
            for k, v in SERVER_MUST.items():
                if v not in (svc or {}).get(k, []):
                    problems.append("%s: the server unit must keep %s=%s" % (path, k, v))
            if "WantedBy" not in sections.get("Install", {}):
                problems.append("%s: [Install] has no WantedBy=" % path)
    elif kind == "timer":
        t = sections.get("Timer", {})
        if not any(k.startswith("On") for k in t):
            problems.append("%s: [Timer] has no On...= trigger" % path)
        if "WantedBy" not in sections.get("Install", {}):
            problems.append("%s: [Install] has no WantedBy=" % path)
    else:
        problems.append("%s: not a .service or .timer file" % path)
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    problems = []
    for p in sys.argv[1:]:
        problems += lint(p)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
