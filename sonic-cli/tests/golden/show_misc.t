# natural order (verified: Zeta, alpha, bgp9, bgp10)
@ hset CONFIG_DB FEATURE|Zeta auto_restart enabled
@ hset CONFIG_DB FEATURE|alpha auto_restart enabled
@ hset CONFIG_DB FEATURE|bgp9 auto_restart enabled
@ hset CONFIG_DB FEATURE|bgp10 auto_restart enabled
$ show feature autorestart
Feature     AutoRestart
----------  --------------
Zeta        enabled
alpha       enabled
bgp         enabled
bgp9        enabled
bgp10       enabled
database    always_enabled
dhcp_relay  enabled
lldp        enabled
nat         enabled
pmon        enabled
radv        enabled
restapi     enabled
sflow       enabled
snmp        enabled
swss        enabled
syncd       enabled
teamd       enabled
telemetry   enabled
# `autorestart` is printed without disable_numparse: an all-numeric column is right-aligned,
# header included
@ del CONFIG_DB FEATURE|Zeta
@ del CONFIG_DB FEATURE|alpha
@ del CONFIG_DB FEATURE|bgp9
@ hset CONFIG_DB FEATURE|bgp10 auto_restart 12
$ show feature autorestart bgp10
Feature      AutoRestart
---------  -------------
bgp10                 12
# `Too many matches`: an empty name is a prefix of every command; `show` is an AliasedGroup
# (unique prefix only), `show feature` an AbbreviationGroup whose shortest match `config` is not a
# prefix of the others
$ show ''
! Usage: show [OPTIONS] COMMAND [ARGS]...
! Try 'show -h' for help.
!
! Error: Too many matches: feature, kubernetes
? 2
$ show feature ''
! Usage: show feature [OPTIONS] COMMAND [ARGS]...
! Try 'show feature -h' for help.
!
! Error: Too many matches: autorestart, config, status
? 2
# `show kubernetes server` is a plain click.Group: no abbreviations (verified)
$ show kubernetes s c
! Usage: show kubernetes s [OPTIONS] COMMAND [ARGS]...
! Try 'show kubernetes s -h' for help.
!
! Error: No such command 'c'.
? 2
$ show feature status bgp extra
! Usage: show feature status [OPTIONS] [FEATURE_NAME]
! Try 'show feature status -h' for help.
!
! Error: Got unexpected extra argument (extra)
? 2
$ show feature
Usage: show feature [OPTIONS] COMMAND [ARGS]...

  Show feature status

Options:
  -?, -h, --help  Show this message and exit.

Commands:
  autorestart  Show auto-restart state for a feature
  config       Show feature config
  status       Show feature state
$ show kube
Usage: show kube [OPTIONS] COMMAND [ARGS]...

Options:
  -?, -h, --help  Show this message and exit.

Commands:
  labels
  server  Server configuration
$ show feature status -h
Usage: show feature status [OPTIONS] [FEATURE_NAME]

Options:
  --json          Print the output as JSON (see JSON.md of sonic-cli).
  -?, -h, --help  Show this message and exit.
$ show -x
! Usage: show [OPTIONS] COMMAND [ARGS]...
! Try 'show -h' for help.
!
! Error: No such option: -x
? 2
# --json forms (JSON.md)
$ show feature status bgp --json
[
  {
    "feature": "bgp",
    "state": "enabled",
    "auto_restart": "enabled",
    "system_state": null,
    "update_time": null,
    "container_id": null,
    "container_version": null,
    "set_owner": "local",
    "current_owner": null,
    "remote_state": null
  }
]
$ show feature config --json snmp
[
  {
    "feature": "snmp",
    "state": "enabled",
    "auto_restart": "enabled",
    "owner": "kube",
    "fallback": null
  }
]
$ show feature autorestart database --json
[
  {
    "feature": "database",
    "auto_restart": "always_enabled"
  }
]
$ show feature autorestart nosuch --json
Can not find feature nosuch
? 1
$ show kubernetes server config --json
{
  "ip": "10.3.157.24",
  "port": "6443",
  "insecure": "True",
  "disable": "False"
}
$ show kubernetes server status --json
null
$ show kubernetes labels --json
{}
