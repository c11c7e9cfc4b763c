"""The README documents what a new user needs."""

from pathlib import Path

from upgrade_server.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.append("UPGRADE_SERVER_" + name.upper())
        elif isinstance(alias, str):
            names.append(alias)
        else:
            names.append(str(alias.choices[0]))
    return names


def test_every_setting_is_in_the_readme():
    missing = [name for name in _env_names() if f"`{name}`" not in README]
    assert missing == []


def test_readme_opens_with_a_two_command_quick_start():
    assert README.split("\n## ")[1].startswith("Quick start")
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert commands == ["./scripts/demo.sh", "./scripts/test.sh"]
