# upstream test show_server_output_0 (mock KUBERNETES_MASTER|SERVER)
$ show kubernetes server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.3.157.24  6443    True        False
# `kube` is a unique prefix of `kubernetes`
$ show kube server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.3.157.24  6443    True        False
# verified sequence (test_kube), step 2: insecure off
$ config kubernetes server insecure off
$ show kubernetes server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.3.157.24  6443    False       False
# step 3: disable on
$ config kubernetes server disable on
$ show kubernetes server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.3.157.24  6443    False       True
# step 4: port 7777
$ config kube server port 7777
$ show kubernetes server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.3.157.24  7777    False       True
# step 5: delete the table, then ip. DIFFERS FROM UPSTREAM: upstream writes and shows
# insecure=True here (`10.3.157.24  6443  True  False`); the daemon's default, false, is used
# (COMPAT-NOTES.md)
@ del CONFIG_DB KUBERNETES_MASTER|SERVER
$ show kubernetes server config
Kubernetes server is not configured
$ config kubernetes server ip 10.10.10.11
@ expect CONFIG_DB KUBERNETES_MASTER|SERVER ip=10.10.10.11 port=6443 insecure=False disable=False
$ show kubernetes server config
ip           port    insecure    disable
-----------  ------  ----------  ---------
10.10.10.11  6443    False       False
# verified: `disable on` on an empty table creates ip="" and show prints an empty ip cell.
# DIFFERS FROM UPSTREAM in the insecure column (True upstream)
@ del CONFIG_DB KUBERNETES_MASTER|SERVER
$ config kubernetes server disable on
@ expect CONFIG_DB KUBERNETES_MASTER|SERVER ip= port=6443 insecure=False disable=True
$ show kubernetes server config
ip    port    insecure    disable
----  ------  ----------  ---------
      6443    False       True
# a missing ip is shown empty. DIFFERS FROM UPSTREAM, which prints `False` (string bug)
@ hdel CONFIG_DB KUBERNETES_MASTER|SERVER ip
$ show kubernetes server config
ip    port    insecure    disable
----  ------  ----------  ---------
      6443    False       True
# port: out of range and non-integer values are refused with exit 1 (upstream: a traceback for
# non-integers); the written value is the number (`07777` is stored as 7777)
$ config kubernetes server port 10101011
Invalid port value 10101011
? 1
$ config kubernetes server port 0
Invalid port value 0
? 1
$ config kubernetes server port abc
Invalid port value abc
? 1
$ config kubernetes server port 07777
@ expect CONFIG_DB KUBERNETES_MASTER|SERVER port=7777
# usage errors (verified)
$ config kubernetes server insecure yes
! Usage: config kubernetes server insecure [OPTIONS] {on|off}
! Try 'config kubernetes server insecure -h' for help.
!
! Error: Invalid value for '{on|off}': 'yes' is not one of 'on', 'off'.
? 2
$ config kubernetes server ip
! Usage: config kubernetes server ip [OPTIONS] VIP
! Try 'config kubernetes server ip -h' for help.
!
! Error: Missing argument 'VIP'.
? 2
$ config kubernetes label add hwsku
! Usage: config kubernetes label add [OPTIONS] KEY VAL
! Try 'config kubernetes label add -h' for help.
!
! Error: Missing argument 'VAL'.
? 2
# `server` is a plain group: no abbreviations below it
$ config kube s i 10.0.0.1
! Usage: config kube s [OPTIONS] COMMAND [ARGS]...
! Try 'config kube s -h' for help.
!
! Error: No such command 'i'.
? 2
# status (upstream test non_empty_server_status)
$ show kubernetes server status
Kubernetes server has no status info
@ hset STATE_DB KUBERNETES_MASTER|SERVER ip 10.3.157.24 port 6443 connected false update_time '2020-11-13 00:49:05'
$ show kubernetes server status
ip           port    connected    update-time
-----------  ------  -----------  -------------------
10.3.157.24  6443    false        2020-11-13 00:49:05
# labels (upstream test: empty)
$ show kubernetes labels
name    value
------  -------
# upstream: after `label add hwsku Force10-S6000` and `label drop teamd_enabled` upstream shows
# `teamd_enabled  false`. DIFFERS FROM UPSTREAM: drop removes the label (HDEL) so that ctrmgrd
# removes it from the node
$ config kubernetes label add hwsku Force10-S6000
$ config kubernetes label drop teamd_enabled
$ show kubernetes labels
name    value
------  -------------
hwsku   Force10-S6000
$ config kubernetes label add teamd_enabled true
$ show kubernetes labels
name           value
-------------  -------------
hwsku          Force10-S6000
teamd_enabled  true
$ config kube label drop teamd_enabled
@ expect-no-field STATE_DB KUBE_LABELS|SET teamd_enabled
$ show kubernetes labels
name    value
------  -------------
hwsku   Force10-S6000
# label keys and values are checked against Kubernetes' syntax
$ config kubernetes label add 'bad key' x
! Usage: config kubernetes label add [OPTIONS] KEY VAL
! Try 'config kubernetes label add -h' for help.
!
! Error: Invalid value for 'KEY': invalid label key "bad key": only letters, digits, '_', '.' and '-' are allowed.
? 2
$ config kubernetes label add k -bad-
! Usage: config kubernetes label add [OPTIONS] KEY VAL
! Try 'config kubernetes label add -h' for help.
!
! Error: No such option: -b
? 2
$ config kubernetes label add k -- -bad-
! Usage: config kubernetes label add [OPTIONS] KEY VAL
! Try 'config kubernetes label add -h' for help.
!
! Error: Invalid value for 'VAL': invalid label value "-bad-": must start and end with a letter or digit.
? 2
# an empty value is a valid label value and is stored as given (upstream stored `false`)
$ config kubernetes label add empty ''
@ expect STATE_DB KUBE_LABELS|SET empty=
# join / reset write a request for ctrmgrd into STATE_DB KUBERNETES_MASTER|REQUEST
@ hdel CONFIG_DB KUBERNETES_MASTER|SERVER ip
$ config kubernetes join
Kubernetes server is not configured; set it with 'config kubernetes server ip <VIP>'
? 1
$ config kubernetes server ip 10.3.157.24
$ config kubernetes join
Kubernetes server is disabled; enable it with 'config kubernetes server disable off'
? 1
$ config kubernetes server disable off
$ config kubernetes join
@ expect STATE_DB KUBERNETES_MASTER|REQUEST action=join force=false
@ del STATE_DB KUBERNETES_MASTER|REQUEST
@ hset STATE_DB KUBERNETES_MASTER|SERVER connected true
$ config kubernetes join
Kubernetes server 10.3.157.24 is already connected; use 'config kubernetes join -f' to join again
$ config kube j -f
@ expect STATE_DB KUBERNETES_MASTER|REQUEST action=join force=true
$ config kubernetes reset
@ expect STATE_DB KUBERNETES_MASTER|REQUEST action=reset force=false
@ hset STATE_DB KUBERNETES_MASTER|SERVER connected false
$ config kubernetes reset
Kubernetes server is not connected; use 'config kubernetes reset -f' to reset anyway
$ config kubernetes reset --force
@ expect STATE_DB KUBERNETES_MASTER|REQUEST action=reset force=true
$ config kubernetes
Usage: config kubernetes [OPTIONS] COMMAND [ARGS]...

  kubernetes command line

Options:
  -?, -h, --help  Show this message and exit.

Commands:
  join    Ask ctrmgrd to join the Kubernetes master
  label   label configuration
  reset   Ask ctrmgrd to reset the connection to the Kubernetes master
  server  Server configuration
$ config kubernetes join -h
Usage: config kubernetes join [OPTIONS]

  Ask ctrmgrd to join the Kubernetes master

Options:
  -f, --force     Join even when already connected
  -?, -h, --help  Show this message and exit.
