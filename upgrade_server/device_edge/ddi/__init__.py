"""The Eclipse hawkBit Direct Device Integration (DDI) API, for devices that
already run a hawkBit client (SWUpdate's suricatta, RAUC's hawkBit clients).

Served under `/{tenant}/controller/v1/{controllerId}`, as hawkBit serves it:
the tenant is an organisation's slug, the controller id a device's serial.
A DDI action is this server's offer of a release to a device, numbered by
the release's id; the offer is the native update check's (coverage,
rollouts, approvals, maintenance windows), and feedback becomes the same
install events through the same state machine.

    targets.py      who is asking: TargetToken (the device's token) or an
                    organisation's GatewayToken; anonymous polling is off
    poll.py         the base poll, answered by the device edge without Flask
    deployments.py  deploymentBase and installedBase documents, the action's
                    state for a device, the cancel offered
    feedback.py     action and cancel feedback as install events
    api.py          the Flask routes (documented in the OpenAPI document)
"""
