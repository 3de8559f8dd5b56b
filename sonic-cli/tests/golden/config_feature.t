# config feature state / autorestart on the host (single ASIC)
$ config feature state sflow enabled
@ expect CONFIG_DB FEATURE|sflow state=enabled
$ config feature state sflow disabled
@ expect CONFIG_DB FEATURE|sflow state=disabled
# abbreviations: `s` is state (verified) and the Usage line shows the name as typed
$ config feature s sflow enabled
@ expect CONFIG_DB FEATURE|sflow state=enabled
$ config f s sflow foo
! Usage: config f s [OPTIONS] <feature-name> <state>
! Try 'config f s -h' for help.
!
! Error: Invalid value for '<state>': 'foo' is not one of 'enabled', 'disabled'.
? 2
# usage errors (click 8.1 format)
$ config feature state bgp foo
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: Invalid value for '<state>': 'foo' is not one of 'enabled', 'disabled'.
? 2
$ config feature state bgp
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: Missing argument '<state>'. Choose from:
! 	enabled,
! 	disabled
? 2
$ config feature state
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: Missing argument '<feature-name>'.
? 2
$ config feature state bgp enabled extra
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: Got unexpected extra argument (extra)
? 2
$ config feature x
! Usage: config feature [OPTIONS] COMMAND [ARGS]...
! Try 'config feature -h' for help.
!
! Error: No such command 'x'.
? 2
# refused changes exit 1 with a message on stdout
$ config feature state foo enabled
Feature 'foo' doesn't exist
? 1
$ config feature state database disabled
Feature 'database' state is always enabled and can not be modified
? 1
@ expect CONFIG_DB FEATURE|database state=always_enabled
# ...but an always-enabled auto-restart is reported with exit 0 (verified)
$ config feature autorestart database disabled
Feature 'database' auto-restart is always enabled and can not be modified
@ expect CONFIG_DB FEATURE|database auto_restart=always_enabled
$ config feature autorestart sflow disabled
@ expect CONFIG_DB FEATURE|sflow auto_restart=disabled
$ config feature a sflow enabled
@ expect CONFIG_DB FEATURE|sflow auto_restart=enabled
$ config feature autorestart nosuch enabled
Feature 'nosuch' doesn't exist
? 1
$ config feature autorestart bgp maybe
! Usage: config feature autorestart [OPTIONS] <feature-name> <autorestart>
! Try 'config feature autorestart -h' for help.
!
! Error: Invalid value for '<autorestart>': 'maybe' is not one of 'enabled', 'disabled'.
? 2
# a missing field: newer upstream (PR #4445) wording instead of the KeyError traceback
@ hset CONFIG_DB FEATURE|bare high_mem_alert disabled
$ config feature state bare enabled
Feature 'bare' state is not available in any namespace
? 1
$ config feature autorestart bare enabled
Feature 'bare' auto-restart is not available in any namespace
? 1
@ expect-no-field CONFIG_DB FEATURE|bare state auto_restart
# owner and fallback: host only, `Unable to retrieve` for an unknown feature
$ config feature owner nosuch kube
Unable to retrieve nosuch from FEATURE table
? 1
$ config feature owner bgp cloud
! Usage: config feature owner [OPTIONS] <feature-name> <owner>
! Try 'config feature owner -h' for help.
!
! Error: Invalid value for '<owner>': 'cloud' is not one of 'local', 'kube'.
? 2
$ config feature fallback bgp
! Usage: config feature fallback [OPTIONS] <feature-name> <fallback>
! Try 'config feature fallback -h' for help.
!
! Error: Missing argument '<fallback>'. Choose from:
! 	on,
! 	off
? 2
$ config feature o bgp kube
@ expect CONFIG_DB FEATURE|bgp set_owner=kube
# the HLD's `config feature <property> <name> <value>` by field name (exact names only)
$ config feature set_owner bgp local
@ expect CONFIG_DB FEATURE|bgp set_owner=local
$ config feature no_fallback_to_local bgp true
@ expect CONFIG_DB FEATURE|bgp no_fallback_to_local=true
$ config feature auto_restart bgp disabled
@ expect CONFIG_DB FEATURE|bgp auto_restart=disabled
$ config feature kube_failure_detection bgp 10
@ expect CONFIG_DB FEATURE|bgp kube_failure_detection=10
$ config feature k bgp 0
@ expect CONFIG_DB FEATURE|bgp kube_failure_detection=0
# (click wraps a usage line longer than 78 columns under the first argument)
$ config feature kube_failure_detection bgp 5m
! Usage: config feature kube_failure_detection [OPTIONS] <feature-name>
!                                              <minutes>
! Try 'config feature kube_failure_detection -h' for help.
!
! Error: Invalid value for '<minutes>': '5m' is not a whole number of minutes.
? 2
$ config feature kube_failure_detection nosuch 5
Unable to retrieve nosuch from FEATURE table
? 1
# field names never take part in prefix matching: `s` is still only `state`
$ config feature set sflow enabled
! Usage: config feature [OPTIONS] COMMAND [ARGS]...
! Try 'config feature -h' for help.
!
! Error: No such command 'set'.
? 2
# groups without a subcommand print their help and exit 0
$ config feature
Usage: config feature [OPTIONS] COMMAND [ARGS]...

  Configure features

Options:
  -?, -h, --help  Show this message and exit.

Commands:
  autorestart             Enable/disable autosrestart of a feature
  fallback                set fallback for a feature
  install                 Install a kube-only feature
  kube_failure_detection  set kube failure detection minutes for a feature
  owner                   set owner for a feature
  state                   Enable/disable a feature
  uninstall               Remove what 'config feature install' installed
$ config feature state -h
Usage: config feature state [OPTIONS] <feature-name> <state>

  Enable/disable a feature

Options:
  --block         Wait till operation is finished
  -?, -h, --help  Show this message and exit.
$ config feature state --help bgp nonsense
Usage: config feature state [OPTIONS] <feature-name> <state>

  Enable/disable a feature

Options:
  --block         Wait till operation is finished
  -?, -h, --help  Show this message and exit.
$ config feature state -? --bogus
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: No such option: --bogus
? 2
$ config feature state --blok bgp enabled
! Usage: config feature state [OPTIONS] <feature-name> <state>
! Try 'config feature state -h' for help.
!
! Error: No such option: --blok Did you mean --block?
? 2
$ config feature state --block=yes bgp enabled
! Error: Option '--block' does not take a value.
? 2
$ config
Usage: config [OPTIONS] COMMAND [ARGS]...

  SONiC command line - 'config' command

Options:
  -?, -h, --help  Show this message and exit.

Commands:
  feature     Configure features
  kubernetes  kubernetes command line
