"""Renders a kustomization of this repository in pure Python: ``python deploy/k8s/render.py DIR``.

Supports exactly the subset of Kustomize that deploy/k8s uses, and refuses any other
field, so nobody adds a feature the tests cannot render:

- ``resources``: YAML files and directories with a kustomization (rendered first);
- ``namespace``: set on every object;
- ``images``: ``name`` → ``newName`` / ``newTag`` / ``digest`` in every container and
  init container;
- ``patches``: a file (``path``) merged into every object matching its ``target``
  (``kind``, optional ``name``, optional ``group``). The merge is a JSON merge patch
  (maps merged, lists and scalars replaced, null deletes): the patches here only set
  scalars and maps, where Kustomize's strategic merge gives the same result.

tests/test_deploy_manifests.py validates what this renders, and compares it with
``kubectl kustomize`` where kubectl is installed.
"""
import copy
import sys
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}


class KustomizeError(ValueError):
    pass


def plain_loader():
    """yaml's SafeLoader without the resolvers others registered on it: once nameko's config
    loader ran in a process, SafeLoader expands ``${VAR:default}`` scalars (its ``!env_var``
    tag), which would rewrite the manifests' commands while reading them."""
    class Loader(yaml.SafeLoader):
        pass
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.startswith("!")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return Loader


def safe_load_all(stream):
    return yaml.load_all(stream, Loader=plain_loader())


def load_yaml_docs(path):
    with open(path) as fh:
        return [doc for doc in safe_load_all(fh) if doc]


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch of ``patch`` onto ``target`` (returns the result)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _set_images(node, images):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for c in value:
                    _set_image(c, images)
            else:
                _set_images(value, images)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, images)


def _set_image(container, images):
    image = container.get("image", "")
    name = image.split("@")[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    for rule in images:
        if rule["name"] == name:
            new = rule.get("newName", name)
            if rule.get("digest"):
                container["image"] = f"{new}@{rule['digest']}"
            elif rule.get("newTag"):
                container["image"] = f"{new}:{rule['newTag']}"
            else:
                container["image"] = new + image[len(name):]


def _matches(obj, target):
    unknown = set(target) - {"kind", "name", "group"}
    if unknown:
        raise KustomizeError(f"patch target fields not supported: {sorted(unknown)}")
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    return (obj.get("kind") == target.get("kind", obj.get("kind"))
            and obj["metadata"].get("name") == target.get("name", obj["metadata"].get("name"))
            and group == target.get("group", group))


def build(directory):
    """The objects of the kustomization in ``directory``, in resource order."""
    directory = Path(directory)
    (kfile,) = [directory / n for n in ("kustomization.yaml", "kustomization.yml", "Kustomization")
                if (directory / n).exists()] or [None]
    if kfile is None:
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = load_yaml_docs(kfile)[0]
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise KustomizeError(f"{kfile}: fields not supported by render.py: {sorted(unknown)}")
    objects = []
    for resource in spec.get("resources", []):
        path = directory / resource
        if path.is_dir():
            objects += build(path)
        elif path.is_file():
            objects += load_yaml_docs(path)
        else:
            raise KustomizeError(f"{kfile}: resource {resource} does not exist")
    for patch in spec.get("patches", []):
        unknown = set(patch) - {"path", "target"}
        if unknown or "path" not in patch:
            raise KustomizeError(f"{kfile}: patch fields not supported: {sorted(unknown)}")
        (body,) = load_yaml_docs(directory / patch["path"])
        target = patch.get("target") or {"kind": body["kind"], "name": body["metadata"]["name"]}
        hits = [i for i, obj in enumerate(objects) if _matches(obj, target)]
        if not hits:
            raise KustomizeError(f"{kfile}: patch {patch['path']} matches no object")
        for i in hits:
            name = objects[i]["metadata"]["name"]
            objects[i] = merge_patch(objects[i], body)
            objects[i]["metadata"]["name"] = name  # a targeted patch never renames
    if spec.get("images"):
        for obj in objects:
            _set_images(obj, spec["images"])
    if spec.get("namespace"):
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    keys = [(o["apiVersion"].split("/")[0], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in objects]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise KustomizeError(f"{kfile}: objects defined twice: {sorted(map(str, duplicates))}")
    return objects


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    yaml.safe_dump_all(build(args[0]), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
