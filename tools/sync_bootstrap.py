"""Rewrite every chapter's Colab install line from _config.yml (`make sync` runs this).

The repository URL and branch live in one place, `_config.yml` -> `repository`. Each chapter's
first (hidden) cell installs nfcore with
    %pip install -q "nfcore @ git+<url>@<branch>"
This script rewrites that line in every `chapters/NN_name.md` to match the configuration, so
publishing under another URL is: edit `_config.yml`, run `make sync`.
"""
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATTERN = re.compile(r'%pip install -q "nfcore @ git\+[^"]*"')


def install_line(config_path=ROOT / "_config.yml") -> str:
    repo = yaml.safe_load(pathlib.Path(config_path).read_text())["repository"]
    return f'%pip install -q "nfcore @ git+{repo["url"]}@{repo["branch"]}"'


def main() -> int:
    line = install_line()
    for md in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md")):
        text = md.read_text()
        if not PATTERN.search(text):
            print(f"{md.name}: no install line found; copy the bootstrap cell of "
                  "another chapter", file=sys.stderr)
            return 1
        new = PATTERN.sub(lambda _: line, text)
        if new != text:
            md.write_text(new)
            print(f"{md.name}: install line -> {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
