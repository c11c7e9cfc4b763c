"""A stand-in for RAUC's D-Bus service, for tests of RAUC's hawkBit client.

Run by Debian's /usr/bin/python3 (python3-gi), not by the project's venv:

    /usr/bin/python3 tests/ddi/rauc_service.py STATE_DIR

on the bus that DBUS_SYSTEM_BUS_ADDRESS names. It owns `de.pengutronix.rauc`
and serves `de.pengutronix.rauc.Installer` on `/` as rauc does, as far as
rauc-hawkbit uses it: `Install(s)` keeps a copy of the bundle and is answered
at once; then `Progress` changes and `Completed(i)` is emitted.

The test steers it and reads it through files in STATE_DIR:

- `ready`: written once the bus name is owned;
- `result`: the result of the installs to come (an integer, 0 = success;
  missing: 0); a non-zero result sets `LastError` first, as rauc does;
- `hold`: while it exists, an install in progress does not complete;
- `bundles/N.raucb`: the bundle of the N-th install, as handed over;
- `journal`: one line per step, `install N PATH`, `progress N PERCENT`,
  `completed N RESULT`.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from gi.repository import Gio, GLib

NAME = "de.pengutronix.rauc"
INTERFACE = "de.pengutronix.rauc.Installer"
INTROSPECTION = """
<node>
  <interface name="de.pengutronix.rauc.Installer">
    <method name="Install">
      <arg type="s" name="source" direction="in"/>
    </method>
    <signal name="Completed">
      <arg type="i" name="result"/>
    </signal>
    <property name="Operation" type="s" access="read"/>
    <property name="LastError" type="s" access="read"/>
    <property name="Progress" type="(isi)" access="read"/>
    <property name="Compatible" type="s" access="read"/>
    <property name="BootSlot" type="s" access="read"/>
  </interface>
</node>
"""
# How often a held install looks whether it may complete.
HOLD_POLL_MS = 50


class Installer:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.bundles = state / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self.connection: Gio.DBusConnection | None = None
        self.installs = 0
        self.busy = False
        self.properties = {
            "Operation": GLib.Variant("s", "idle"),
            "LastError": GLib.Variant("s", ""),
            "Progress": GLib.Variant("(isi)", (0, "", 0)),
            "Compatible": GLib.Variant("s", "upgrade-server-ci"),
            "BootSlot": GLib.Variant("s", "A"),
        }

    def journal(self, line: str) -> None:
        with (self.state / "journal").open("a", encoding="utf-8") as journal:
            journal.write(line + "\n")

    def set_properties(self, **values: GLib.Variant) -> None:
        self.properties.update(values)
        assert self.connection is not None
        self.connection.emit_signal(
            None,
            "/",
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            GLib.Variant("(sa{sv}as)", (INTERFACE, values, [])),
        )

    def progress(self, percent: int, message: str, depth: int) -> None:
        self.journal(f"progress {self.installs} {percent}")
        self.set_properties(Progress=GLib.Variant("(isi)", (percent, message, depth)))

    # D-Bus handlers

    def on_call(self, connection, sender, path, interface, method, parameters, invocation):
        if method != "Install":
            invocation.return_dbus_error(
                "org.freedesktop.DBus.Error.UnknownMethod", f"no method {method}"
            )
            return
        if self.busy:
            invocation.return_dbus_error(
                "org.freedesktop.DBus.Error.Failed", "Already processing a different method"
            )
            return
        (source,) = parameters.unpack()
        self.busy = True
        self.installs += 1
        # Copied before answering: rauc-hawkbit deletes the file on Completed.
        shutil.copyfile(source, self.bundles / f"{self.installs}.raucb")
        self.journal(f"install {self.installs} {source}")
        invocation.return_value(None)
        GLib.idle_add(self.start)

    def on_get_property(self, connection, sender, path, interface, name):
        return self.properties[name]

    # The install, step by step

    def start(self) -> bool:
        self.set_properties(
            Operation=GLib.Variant("s", "installing"), LastError=GLib.Variant("s", "")
        )
        self.progress(0, "Installing", 1)
        self.progress(40, "Copying image to rootfs.1", 2)
        GLib.timeout_add(HOLD_POLL_MS, self.finish)
        return False

    def finish(self) -> bool:
        if (self.state / "hold").exists():
            return True  # asked again in HOLD_POLL_MS
        result_file = self.state / "result"
        result = int(result_file.read_text().strip() or 0) if result_file.exists() else 0
        if result:
            self.progress(100, "Installing failed.", 1)
            self.set_properties(
                LastError=GLib.Variant("s", "Installation error: stand-in told to fail")
            )
        else:
            self.progress(100, "Installing done.", 1)
        self.set_properties(Operation=GLib.Variant("s", "idle"))
        # Journaled first: whatever the client does on Completed comes after.
        self.journal(f"completed {self.installs} {result}")
        self.busy = False
        assert self.connection is not None
        self.connection.emit_signal(
            None, "/", INTERFACE, "Completed", GLib.Variant("(i)", (result,))
        )
        self.connection.flush_sync(None)
        return False


def main() -> None:
    state = Path(sys.argv[1])
    installer = Installer(state)
    loop = GLib.MainLoop()
    node = Gio.DBusNodeInfo.new_for_xml(INTROSPECTION)

    def on_bus(connection: Gio.DBusConnection, name: str) -> None:
        installer.connection = connection
        connection.register_object(
            "/", node.interfaces[0], installer.on_call, installer.on_get_property, None
        )

    def on_name(connection: Gio.DBusConnection, name: str) -> None:
        (state / "ready").write_text("ready\n")

    def on_lost(connection: Gio.DBusConnection | None, name: str) -> None:
        print(f"lost or could not own {name}", file=sys.stderr)
        loop.quit()

    Gio.bus_own_name(Gio.BusType.SYSTEM, NAME, Gio.BusNameOwnerFlags.NONE, on_bus, on_name, on_lost)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
