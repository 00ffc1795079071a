"""``hybridlib info``: versions, device, bundled models and datasets (see :mod:`hybridlib.info`)."""

from __future__ import annotations

from hybridlib.info import collect


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def run(args) -> int:
    info = collect()
    if args.json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    print(f"python      {info['python']}  ({info['platform']})")
    for name, version in info["versions"].items():
        print(f"  {name:<22} {version or 'not installed'}")
    dev = info["device"]
    gpus = ", ".join(dev["cuda_devices"]) or "none"
    print(f"device      {dev['default']}  (CUDA available: {dev['cuda_available']}; GPUs: {gpus}; "
          f"CPU threads: {dev['cpu_threads']})")
    print("bundled models")
    for name, entry in info["models"].items():
        status = entry["path"] if entry["found"] else f"NOT FOUND - {entry['hint']}"
        print(f"  {name:<40} {status}")
    print("datasets")
    for name, entry in info["datasets"].items():
        print(f"  {name:<32} {'found' if entry['found'] else 'absent':<7} {entry['path']}")
    return 0 if all(m["found"] for m in info["models"].values()) else 1
