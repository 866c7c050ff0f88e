"""Render and lint the Skyport Helm chart with the real Helm engine (helm-python-sdk).

Commands (run with the project venv's Python, target/pytools/bin/python):

  helm_render.py write
      Regenerate the committed default rendering, helm/rendered/default.yaml.
  helm_render.py default
      Print what `write` would write (the drift test compares it with the committed file).
  helm_render.py render [--values JSON] [--name NAME] [--namespace NS] [--out FILE]
      Render with the given values (JSON object). Writes the manifests as one YAML stream to
      FILE (for kubernetes-validate) and prints {"objects": [...], "secrets": {name: {key:
      decoded value}}, "notes": "..."} as JSON.
      A refused value set (schema, `required`, `fail`) exits 2 with Helm's message on stderr.
  helm_render.py lint [--values JSON]
      Print Helm's lint report as JSON ({"messages": [...], "errors": [...]}).

The committed rendering uses release "skyport" in namespace "skyport" with the chart's
default values. The only non-deterministic parts of a render, the admin token and the
secret key the chart generates at install, are replaced by a fixed marker there.
"""

import argparse
import base64
import json
import pathlib
import re
import sys

import helm_python
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "skyport"
RENDERED = ROOT / "helm" / "rendered" / "default.yaml"
REGENERATE = "target/pytools/bin/python tests/py/helm_render.py write"
DEFAULT_NAME = "skyport"
DEFAULT_NAMESPACE = "skyport"
GENERATED_MARKER = base64.b64encode(b"generated-at-install").decode()


def render(values, name=DEFAULT_NAME, namespace=DEFAULT_NAMESPACE):
    """(NOTES.txt text, [(template path, manifest text)]) sorted by path, empty ones dropped."""
    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values=values, name=name, namespace=namespace, is_install=True)
    notes = ""
    manifests = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        elif text.strip():
            manifests.append((path, text.strip() + "\n"))
    return notes, manifests


def stream(manifests):
    """One YAML stream, each document preceded by its source, as `helm template` prints."""
    out = []
    for path, text in manifests:
        for doc in re.split(r"(?m)^---\s*$", text):
            if doc.strip():
                out.append(f"---\n# Source: {path}\n{doc.strip()}\n")
    return "".join(out)


def mask_generated(manifests, name, key, length):
    """Replace the value the chart generates under `key` of Secret `name` (`length`
    alphanumerics) with a fixed marker; fails if it is not there."""
    pattern = re.compile(rf"(?m)^(  {re.escape(key)}: )\"([A-Za-z0-9+/=]+)\"$")
    masked = []
    found = False
    for path, text in manifests:
        if f"name: {name}\n" in text and "kind: Secret" in text:
            value = base64.b64decode(pattern.search(text).group(2)).decode()
            assert re.fullmatch(rf"[A-Za-z0-9]{{{length}}}", value), f"generated {key} is not {length} alphanumerics"
            text, n = pattern.subn(rf'\g<1>"{GENERATED_MARKER}"', text)
            found = n == 1
        masked.append((path, text))
    assert found, f"the default rendering has no generated Secret {name}"
    return masked


def mask_generated_secrets(manifests):
    """Replace the generated admin token and secret key with a fixed marker."""
    manifests = mask_generated(manifests, f"{DEFAULT_NAME}-admin-token", "admin-token", 40)
    return mask_generated(manifests, f"{DEFAULT_NAME}-secret-key", "secret-key", 32)


def default_stream():
    _, manifests = render({})
    header = (
        "# The Skyport chart rendered with its default values (release skyport, namespace\n"
        "# skyport) by the Helm engine. Generated: do not edit. Regenerate with\n"
        f"#   {REGENERATE}\n"
        f"# The admin token and secret key the chart generates at install are shown as base64\n"
        f"# \"generated-at-install\".\n"
    )
    return header + stream(mask_generated_secrets(manifests))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write")
    sub.add_parser("default")
    render_cmd = sub.add_parser("render")
    render_cmd.add_argument("--values", default="{}")
    render_cmd.add_argument("--name", default=DEFAULT_NAME)
    render_cmd.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    render_cmd.add_argument("--out")
    lint_cmd = sub.add_parser("lint")
    lint_cmd.add_argument("--values", default="{}")
    args = parser.parse_args()

    if args.command == "write":
        RENDERED.parent.mkdir(parents=True, exist_ok=True)
        RENDERED.write_text(default_stream())
        print(f"wrote {RENDERED.relative_to(ROOT)}")
    elif args.command == "default":
        sys.stdout.write(default_stream())
    elif args.command == "render":
        try:
            notes, manifests = render(json.loads(args.values), args.name, args.namespace)
        except (helm_python.HelmValuesError, helm_python.HelmRenderError) as e:
            print(f"{type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(2)
        text = stream(manifests)
        if args.out:
            pathlib.Path(args.out).write_text(text)
        objects = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        secrets = {
            obj["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
            for obj in objects
            if obj["kind"] == "Secret"
        }
        json.dump({"objects": objects, "secrets": secrets, "notes": notes}, sys.stdout)
    elif args.command == "lint":
        report = helm_python.lint(str(CHART), values=json.loads(args.values))
        json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
