# upstream test show_feature_status_output (seeded from tests/mock_tables/config_db.json)
$ show feature status
Feature     State           AutoRestart     SetOwner
----------  --------------  --------------  ----------
bgp         enabled         enabled         local
database    always_enabled  always_enabled  local
dhcp_relay  enabled         enabled         kube
lldp        enabled         enabled         kube
nat         enabled         enabled         local
pmon        enabled         enabled         kube
radv        enabled         enabled         kube
restapi     disabled        enabled         local
sflow       disabled        enabled         local
snmp        enabled         enabled         kube
swss        enabled         enabled         local
syncd       enabled         enabled         local
teamd       enabled         enabled         local
telemetry   enabled         enabled         kube
# upstream test test_show_feature_status_abbrev_cmd: `st` is status
$ show feature st
Feature     State           AutoRestart     SetOwner
----------  --------------  --------------  ----------
bgp         enabled         enabled         local
database    always_enabled  always_enabled  local
dhcp_relay  enabled         enabled         kube
lldp        enabled         enabled         kube
nat         enabled         enabled         local
pmon        enabled         enabled         kube
radv        enabled         enabled         kube
restapi     disabled        enabled         local
sflow       disabled        enabled         local
snmp        enabled         enabled         kube
swss        enabled         enabled         local
syncd       enabled         enabled         local
teamd       enabled         enabled         local
telemetry   enabled         enabled         kube
# upstream test show_feature_bgp_status_output
$ show feature status bgp
Feature    State    AutoRestart    SetOwner
---------  -------  -------------  ----------
bgp        enabled  enabled        local
$ show feature status foo
Can not find feature foo
? 1
# STATE_DB `state` (written by featured) is hidden behind CONFIG_DB `state`
@ hset STATE_DB FEATURE|bgp state failed
$ show feature status bgp
Feature    State    AutoRestart    SetOwner
---------  -------  -------------  ----------
bgp        enabled  enabled        local
# upstream test show_feature_status_output_with_remote_mgmt
@ hset STATE_DB FEATURE|snmp system_state up current_owner kube container_id aaaabbbbcccc update_time '2020-11-12 23:32:56' container_version 20201230.100 remote_state kube
$ show feature status
Feature     State           AutoRestart     SystemState    UpdateTime           ContainerId    Version       SetOwner    CurrentOwner    RemoteState
----------  --------------  --------------  -------------  -------------------  -------------  ------------  ----------  --------------  -------------
bgp         enabled         enabled                                                                          local
database    always_enabled  always_enabled                                                                   local
dhcp_relay  enabled         enabled                                                                          kube
lldp        enabled         enabled                                                                          kube
nat         enabled         enabled                                                                          local
pmon        enabled         enabled                                                                          kube
radv        enabled         enabled                                                                          kube
restapi     disabled        enabled                                                                          local
sflow       disabled        enabled                                                                          local
snmp        enabled         enabled         up             2020-11-12 23:32:56  aaaabbbbcccc   20201230.100  kube        kube            kube
swss        enabled         enabled                                                                          local
syncd       enabled         enabled                                                                          local
teamd       enabled         enabled                                                                          local
telemetry   enabled         enabled                                                                          kube
# features present only in STATE_DB are not listed
@ hset STATE_DB FEATURE|ghost state enabled
$ show feature status ghost
Can not find feature ghost
? 1
# upstream test show_feature_config_output_with_remote_mgmt (the reference elides the middle
# rows; they follow from the mock table)
$ show feature config
Feature     State           AutoRestart     Owner
----------  --------------  --------------  -------
bgp         enabled         enabled         local
database    always_enabled  always_enabled  local
dhcp_relay  enabled         enabled         kube
lldp        enabled         enabled         kube
nat         enabled         enabled         local
pmon        enabled         enabled         kube
radv        enabled         enabled         kube
restapi     disabled        enabled         local
sflow       disabled        enabled         local
snmp        enabled         enabled         kube
swss        enabled         enabled         local
syncd       enabled         enabled         local
teamd       enabled         enabled         local
telemetry   enabled         enabled         kube
$ show feature config nosuch
Can not find feature nosuch
? 1
# upstream test show_feature_snmp_config_owner_output
$ config feature owner snmp local
$ config feature fallback snmp on
@ expect CONFIG_DB FEATURE|snmp set_owner=local no_fallback_to_local=false
$ show feature config snmp
Feature    State    AutoRestart    Owner    fallback
---------  -------  -------------  -------  ----------
snmp       enabled  enabled        local    true
# upstream test show_feature_snmp_config_fallback_output (its mock has set_owner=kube)
$ config feature owner snmp kube
$ config feature fallback snmp off
@ expect CONFIG_DB FEATURE|snmp no_fallback_to_local=true
$ show feature config snmp
Feature    State    AutoRestart    Owner    fallback
---------  -------  -------------  -------  ----------
snmp       enabled  enabled        kube     false
# a value that is neither true nor false is shown lower-cased (verified: `maybe`)
@ hset CONFIG_DB FEATURE|snmp no_fallback_to_local MAYBE
$ show feature config snmp
Feature    State    AutoRestart    Owner    fallback
---------  -------  -------------  -------  ----------
snmp       enabled  enabled        kube     maybe
# the fallback column appears as soon as one listed row has the field
$ show feature config
Feature     State           AutoRestart     Owner    fallback
----------  --------------  --------------  -------  ----------
bgp         enabled         enabled         local
database    always_enabled  always_enabled  local
dhcp_relay  enabled         enabled         kube
lldp        enabled         enabled         kube
nat         enabled         enabled         local
pmon        enabled         enabled         kube
radv        enabled         enabled         kube
restapi     disabled        enabled         local
sflow       disabled        enabled         local
snmp        enabled         enabled         kube     maybe
swss        enabled         enabled         local
syncd       enabled         enabled         local
teamd       enabled         enabled         local
telemetry   enabled         enabled         kube
# upstream test show_feature_autorestart_missing_output (`bar` has no auto_restart; the
# reference elides the rows after `database`)
@ hset CONFIG_DB FEATURE|bar state disabled
$ show feature autorestart
Feature     AutoRestart
----------  --------------
bar         unknown
bgp         enabled
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
# upstream test: show feature autorestart bgp
$ show feature autorestart bgp
Feature    AutoRestart
---------  -------------
bgp        enabled
$ show feature autorestart nosuch
Can not find feature nosuch
? 1
# an empty name means "all features", as Python's `if feature_name:`
$ show feature autorestart ''
Feature     AutoRestart
----------  --------------
bar         unknown
bgp         enabled
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
