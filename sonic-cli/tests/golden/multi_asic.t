# A host and two ASIC namespaces (asic0, asic1), each seeded with the mock tables.
# state and autorestart are written to the host and every namespace
$ config feature state bgp disabled
@ expect CONFIG_DB FEATURE|bgp state=disabled
@ expect asic0:CONFIG_DB FEATURE|bgp state=disabled
@ expect asic1:CONFIG_DB FEATURE|bgp state=disabled
$ config feature autorestart bgp disabled
@ expect CONFIG_DB FEATURE|bgp auto_restart=disabled
@ expect asic0:CONFIG_DB FEATURE|bgp auto_restart=disabled
@ expect asic1:CONFIG_DB FEATURE|bgp auto_restart=disabled
# ...after checking that the namespaces agree (upstream's asic2 mock has bgp disabled/disabled)
@ hset asic1:CONFIG_DB FEATURE|bgp state enabled auto_restart enabled
$ config feature state bgp enabled
Feature 'bgp' state is not consistent across namespaces
? 1
$ config feature autorestart bgp enabled
Feature 'bgp' auto-restart is not consistent across namespaces
? 1
@ expect CONFIG_DB FEATURE|bgp state=disabled auto_restart=disabled
@ expect asic0:CONFIG_DB FEATURE|bgp state=disabled auto_restart=disabled
# a feature missing in one namespace does not exist
@ del asic0:CONFIG_DB FEATURE|nat
$ config feature state nat disabled
Feature 'nat' doesn't exist
? 1
@ expect CONFIG_DB FEATURE|nat state=enabled
# a namespace without the field does not count and is backfilled by the write (PR #4445)
@ hdel asic0:CONFIG_DB FEATURE|sflow state
$ config feature state sflow enabled
@ expect CONFIG_DB FEATURE|sflow state=enabled
@ expect asic0:CONFIG_DB FEATURE|sflow state=enabled
@ expect asic1:CONFIG_DB FEATURE|sflow state=enabled
# the always_enabled check sees every namespace's value
$ config feature state database disabled
Feature 'database' state is always enabled and can not be modified
? 1
# owner, fallback and the property commands touch the host only
$ config feature owner lldp local
$ config feature fallback lldp off
$ config feature kube_failure_detection lldp 3
@ expect CONFIG_DB FEATURE|lldp set_owner=local no_fallback_to_local=true kube_failure_detection=3
@ expect asic0:CONFIG_DB FEATURE|lldp set_owner=kube
@ expect-no-field asic0:CONFIG_DB FEATURE|lldp no_fallback_to_local kube_failure_detection
@ expect asic1:CONFIG_DB FEATURE|lldp set_owner=kube
# so do the kubernetes commands
$ config kubernetes server ip 10.10.10.10
$ config kubernetes label add hwsku Force10-S6000
@ expect CONFIG_DB KUBERNETES_MASTER|SERVER ip=10.10.10.10
@ expect asic0:CONFIG_DB KUBERNETES_MASTER|SERVER ip=10.3.157.24
@ expect STATE_DB KUBE_LABELS|SET hwsku=Force10-S6000
@ expect-no-field asic0:STATE_DB KUBE_LABELS|SET hwsku
# and show reads the host
@ hset asic0:CONFIG_DB FEATURE|lldp state disabled
$ show feature config lldp
Feature    State    AutoRestart    Owner    fallback
---------  -------  -------------  -------  ----------
lldp       enabled  enabled        local    false
