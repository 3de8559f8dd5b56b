# config feature install|uninstall (project addition, HLD "config feature install"), run with
# SONIC_INSTALL_UNIT_DIR=$ROOT/units, SONIC_INSTALL_SCRIPT_DIR=$ROOT/bin and an empty
# SONIC_SYSTEMCTL (no daemon-reload)
$ config feature install snmp2 bgp swss
Installed feature snmp2: $ROOT/units/snmp2.service and $ROOT/bin/snmp2.sh
@ expect-file $ROOT/units/snmp2.service 'Requires=bgp.service' 'Requires=swss.service' 'ExecStart=$ROOT/bin/snmp2.sh wait'
@ expect-file $ROOT/bin/snmp2.sh
@ expect CONFIG_DB FEATURE|snmp2 set_owner=kube no_fallback_to_local=true state=enabled auto_restart=enabled
$ show feature config snmp2
Feature    State    AutoRestart    Owner    fallback
---------  -------  -------------  -------  ----------
snmp2      enabled  enabled        kube     false
$ show feature status snmp2
Feature    State    AutoRestart    SetOwner
---------  -------  -------------  ----------
snmp2      enabled  enabled        kube
# installing again updates the files; no required service means swss; `i` abbreviates install
$ config feature i snmp2
Updated feature snmp2: $ROOT/units/snmp2.service and $ROOT/bin/snmp2.sh
@ expect-file $ROOT/units/snmp2.service 'Requires=swss.service'
# uninstall removes both files and leaves FEATURE|snmp2 alone
$ config feature uninstall snmp2
Uninstalled feature snmp2: removed $ROOT/units/snmp2.service and $ROOT/bin/snmp2.sh
@ expect-no-file $ROOT/units/snmp2.service
@ expect-no-file $ROOT/bin/snmp2.sh
@ expect CONFIG_DB FEATURE|snmp2 set_owner=kube
$ config feature u snmp2
! Error: feature snmp2 is not installed: neither $ROOT/units/snmp2.service nor $ROOT/bin/snmp2.sh exists
? 1
# --spec FILE (HLD proposal 2): the spec must describe the feature named on the command line
$ config feature install snmp3 --spec $GOLDEN/snmp3.spec.yaml
Installed feature snmp3: $ROOT/units/snmp3.service and $ROOT/bin/snmp3.sh
@ expect-file $ROOT/units/snmp3.service 'Requires=swss.service' 'Before=bgp.service' 'RequiredBy=bgp.service'
@ expect-file $ROOT/bin/snmp3.sh
@ expect CONFIG_DB FEATURE|snmp3 set_owner=kube
$ config feature install snmp4 --spec $GOLDEN/snmp3.spec.yaml
! Error: feature spec $GOLDEN/snmp3.spec.yaml describes feature snmp3, not snmp4
? 1
@ expect-no-file $ROOT/units/snmp4.service
$ config feature install snmp3 bgp --spec $GOLDEN/snmp3.spec.yaml
! Usage: config feature install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...
! Try 'config feature install -h' for help.
!
! Error: REQUIRED_SERVICE cannot be combined with --spec: the spec file lists the required services.
? 2
$ config feature install snmp5 --spec $GOLDEN/nosuch.yaml
! Error: cannot read feature spec $GOLDEN/nosuch.yaml: No such file or directory (os error 2)
? 1
$ config feature uninstall snmp3
Uninstalled feature snmp3: removed $ROOT/units/snmp3.service and $ROOT/bin/snmp3.sh
# invalid names and services are refused before anything is written
$ config feature install 'bad name'
! Error: field name: invalid feature name "bad name": only letters, digits, '_', '.' and '-' are allowed
? 1
@ expect-no-field CONFIG_DB FEATURE|bad name set_owner
$ config feature install snmp6 'bgp;reboot'
! Error: field requires[0]: invalid value "bgp;reboot": a service name may contain only letters, digits and ':', '_', '.', '@', '-'
? 1
@ expect-no-file $ROOT/units/snmp6.service
$ config feature uninstall ../x
! Error: field name: invalid feature name "../x": only letters, digits, '_', '.' and '-' are allowed
? 1
# usage errors (click 8.1 format, checked with click 8.1.7)
$ config feature install -bad
! Usage: config feature install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...
! Try 'config feature install -h' for help.
!
! Error: No such option: -b
? 2
$ config feature install
! Usage: config feature install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...
! Try 'config feature install -h' for help.
!
! Error: Missing argument '<feature-name>'.
? 2
$ config feature install snmp2 --spec
! Error: Option '--spec' requires an argument.
? 2
$ config feature install snmp2 --block
! Usage: config feature install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...
! Try 'config feature install -h' for help.
!
! Error: No such option: --block
? 2
$ config feature uninstall
! Usage: config feature uninstall [OPTIONS] <feature-name>
! Try 'config feature uninstall -h' for help.
!
! Error: Missing argument '<feature-name>'.
? 2
$ config feature uninstall a b
! Usage: config feature uninstall [OPTIONS] <feature-name>
! Try 'config feature uninstall -h' for help.
!
! Error: Got unexpected extra argument (b)
? 2
$ config feature install -h
Usage: config feature install [OPTIONS] <feature-name> [REQUIRED_SERVICE]...

  Install a kube-only feature: its systemd unit, its service script and its
  FEATURE entry

Options:
  --spec FILE     Install from this YAML feature spec (its name must be
                  <feature-name>; it lists the required services)
  -?, -h, --help  Show this message and exit.
$ config feature uninstall -h
Usage: config feature uninstall [OPTIONS] <feature-name>

  Remove the unit and script installed by 'config feature install'

Options:
  -?, -h, --help  Show this message and exit.
# the upstream abbreviations still resolve as before
$ config feature s snmp2 disabled
@ expect CONFIG_DB FEATURE|snmp2 state=disabled
$ config feature a snmp2 disabled
@ expect CONFIG_DB FEATURE|snmp2 auto_restart=disabled
$ config feature o snmp2 local
@ expect CONFIG_DB FEATURE|snmp2 set_owner=local
$ config feature f snmp2 on
@ expect CONFIG_DB FEATURE|snmp2 no_fallback_to_local=false
