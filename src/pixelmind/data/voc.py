"""Pascal VOC detection data: one XML file per image, read into :class:`~pixelmind.data.boxes.BoxItem`.

Layouts (found by :func:`pixelmind.data.boxes.find_detection_data`):
- classic: ``D/Annotations/*.xml``, ``D/JPEGImages/`` and ``D/ImageSets/Main/{train,val}.txt``
  (image ids, one per line; ``test.txt`` for ``val --split test``). When both split files exist only the ids they list are read;
  otherwise every XML file is, and ``val_fraction`` of them are held out (seeded).
- flat (the shared raccoon set): ``D/annotations/*.xml`` with the images in ``D/images/``, next
  to the XML files or in ``D``.

Class names come from ``D/labels.txt`` (or ``D/classes.txt``; one name a line, which fixes the
order: a ``<name>`` not in it is an error), else from every ``<name>`` tag, sorted.
Coordinates are taken as written (xyxy pixels): shifting VOC's 1-based corners by one pixel
would change every box of the tools that write 0-based ones, and the round trip through
:func:`~pixelmind.data.boxes.write_detection_data` stays exact.
Objects marked ``<difficult>1</difficult>`` become ``iscrowd=True``: ignored in evaluation, as
the VOC devkit counts a detection of a difficult object neither right nor wrong.
The image's header is checked against ``<size>``; when they differ, a warning, and the image wins.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixelmind.data.boxes import BoxItem, DetectionData, _numbers, clip_box, make_box_item
from pixelmind.data.decode import is_image_file
from pixelmind.data.instances import _first_line, _seeded_split, image_size
from pixelmind.errors import DataError

_FIELDS = ("xmin", "ymin", "xmax", "ymax")

# (name, xyxy box, difficult, where) of one <object>
_Object = tuple[str, list[float], bool, str]


def voc_annotation_dir(root: Path) -> Path | None:
    """``root/Annotations`` or ``root/annotations`` when it holds XML files, else None.

    Example:
        >>> voc_annotation_dir(Path("/nonexistent")) is None
        True
    """
    for name in ("Annotations", "annotations"):
        if (root / name).is_dir() and any((root / name).glob("*.xml")):
            return root / name
    return None


def parse_voc_xml(path: Path) -> tuple[str | None, tuple[int, int] | None, list[_Object]]:
    """``(filename, (width, height) or None, objects)`` of one VOC XML file.

    Each object is ``(name, [xmin, ymin, xmax, ymax], difficult, where)``, ``where`` naming the
    file and the line of its ``<object>`` tag. Malformed XML, a missing ``<name>`` or
    ``<bndbox>`` field or a non-number raise DataError naming the file and line.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.xml"
        >>> _ = p.write_text("<annotation><filename>a.jpg</filename>\\n<object><name>cat</name>"
        ...                  "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>x</ymax></bndbox></object></annotation>")
        >>> parse_voc_xml(p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        pixelmind.errors.DataError: .../a.xml:2: object 0 (cat): <ymax> is not a number: 'x'
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the XML file ({err.strerror or err})") from None
    if b"<!ENTITY" in data:  # entity expansion is the one XML attack expat still parses
        raise DataError(f"{path}: entity declarations are not allowed in a label file")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise DataError(f"{path}:{err.position[0]}: not well-formed XML ({_first_line(err)})") from None
    if root.tag != "annotation":
        raise DataError(f"{path}: the root element is <{root.tag}>, not <annotation> (Pascal VOC)")
    size = None
    if root.find("size") is not None:
        texts = [root.findtext(f"size/{k}") for k in ("width", "height")]
        wh = _numbers([(t or "").strip() for t in texts], 2)
        if wh is None:
            raise DataError(f"{path}: <size> width and height must be numbers, got {texts}")
        size = (int(wh[0]), int(wh[1]))
    # ElementTree keeps no line numbers: the k-th "<object" tag in the text is the k-th object
    objs = root.findall("object")
    lines = [data.count(b"\n", 0, m.start()) + 1 for m in re.finditer(rb"<object[\s>]", data)]
    lines = lines if len(lines) == len(objs) else [None] * len(objs)
    found: list[_Object] = []
    for k, (obj, line) in enumerate(zip(objs, lines)):
        where = f"{path}:{line}: object {k}" if line else f"{path}: object {k}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"{where}: no <name>")
        where = f"{where} ({name})"
        if obj.find("bndbox") is None:
            raise DataError(f"{where}: no <bndbox>")
        box = []
        for key in _FIELDS:
            text = obj.findtext(f"bndbox/{key}")
            if text is None:
                raise DataError(f"{where}: <bndbox> lacks <{key}>")
            value = _numbers([text.strip()], 1)
            if value is None:
                raise DataError(f"{where}: <{key}> is not a number: {text.strip()[:40]!r}")
            box += value
        difficult = _numbers([(obj.findtext("difficult") or "0").strip() or "0"], 1)
        if difficult is None:
            raise DataError(f"{where}: <difficult> must be 0 or 1, got {obj.findtext('difficult')!r}")
        found.append((name, box, difficult[0] != 0, where))
    return root.findtext("filename"), size, found


def _class_file(root: Path) -> tuple[Path, list[str]] | None:
    for name in ("labels.txt", "classes.txt"):
        if (root / name).is_file():
            names = [
                ln.strip() for ln in (root / name).read_text(errors="replace").splitlines() if ln.strip()
            ]
            return root / name, names
    return None


def _image_finder(dirs: list[Path]) -> Callable[[Path, str | None], Path]:
    by_stem: dict[str, Path] = {}
    for d in reversed(dirs):  # the first folder wins
        by_stem.update({p.stem: p for p in d.iterdir() if is_image_file(p)})

    def find(xml: Path, filename: str | None) -> Path:
        name = Path(filename).name if filename else ""  # .name: a label file cannot point outside the folders
        for d in dirs:
            if name and (d / name).is_file():
                return d / name
        if Path(name).stem in by_stem or xml.stem in by_stem:  # <filename> is often stale: try the stems
            return by_stem.get(Path(name).stem) or by_stem[xml.stem]
        raise DataError(
            f"{xml}: image {filename!r} not found in {dirs[0]} (nor any image named {xml.stem}.*)"
        )

    return find


def _split_ids(root: Path, ann_dir: Path, split: str = "val") -> dict[str, list[Path]] | None:
    """The XML files of ``ImageSets/Main/{train,<split>}.txt``; None when they are not given."""
    sets = root / "ImageSets" / "Main"
    if split == "test" and not (sets / "test.txt").is_file():
        raise DataError(f"{root}: no ImageSets/Main/test.txt, so there is no test split to evaluate")
    if not ((sets / "train.txt").is_file() and (sets / f"{split}.txt").is_file()):
        return None
    out = {}
    for part in ("train", split):
        xmls = []
        for lineno, line in enumerate((sets / f"{part}.txt").read_text(errors="replace").splitlines(), 1):
            if line.split():
                xml = ann_dir / f"{line.split()[0]}.xml"
                if not xml.is_file():
                    raise DataError(
                        f"{sets / f'{part}.txt'}:{lineno}: no annotation {xml.name} in {ann_dir}"
                    )
                xmls.append(xml)
        out[part] = xmls
    return out


def find_voc(root: Path, val_fraction: float = 0.2, seed: int = 0, split: str = "val") -> DetectionData:
    """Read the Pascal VOC data set at ``root`` (either layout in the module docstring).

    ``split="test"`` reads ``ImageSets/Main/test.txt`` into ``val`` (to evaluate it).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> d = Path(tempfile.mkdtemp())
        >>> (d / "images").mkdir(); (d / "annotations").mkdir()
        >>> Image.new("RGB", (20, 10)).save(d / "images" / "a.jpg")
        >>> _ = (d / "annotations" / "a.xml").write_text("<annotation><object><name>cat</name><bndbox>"
        ...     "<xmin>2</xmin><ymin>1</ymin><xmax>30</xmax><ymax>9</ymax></bndbox></object></annotation>")
        >>> data = find_voc(d, val_fraction=0)
        >>> data.train[0].boxes.tolist(), data.class_names, data.warnings[0].endswith("clipped")
        ([[2.0, 1.0, 20.0, 9.0]], ['cat'], True)
    """
    root = Path(root)
    ann_dir = voc_annotation_dir(root)
    if ann_dir is None:
        raise DataError(f"{root}: no Annotations/*.xml (Pascal VOC)")
    dirs = [d for d in (root / "JPEGImages", root / "images", ann_dir, root) if d.is_dir()]
    find_image = _image_finder(list(dict.fromkeys(dirs)))
    given = _split_ids(root, ann_dir, split)
    xmls = sorted({x for s in given.values() for x in s}) if given else sorted(ann_dir.glob("*.xml"))
    parsed = {x: parse_voc_xml(x) for x in xmls}
    fixed = _class_file(root)
    names = fixed[1] if fixed else sorted({o[0] for _, _, objs in parsed.values() for o in objs})
    index = {n: i for i, n in enumerate(names)}
    warns: list[str] = []
    items: dict[Path, BoxItem] = {}
    for xml, (filename, size, objs) in parsed.items():
        image = find_image(xml, filename)
        w, h = image_size(image)
        if size is not None and size != (w, h):
            warns.append(
                f"{xml}: <size> {size[0]}x{size[1]} differs from the image's {w}x{h}; the image's used"
            )
        found = []
        for name, box, difficult, where in objs:
            if name not in index:
                raise DataError(f"{where}: unknown class {name!r} (not in {fixed[0] if fixed else names})")
            clipped = clip_box(box, w, h, where, warns)
            if clipped is not None:
                found.append((clipped, index[name], difficult))
        items[xml] = make_box_item(image, w, h, found)
    if given:
        train, val = ([items[x] for x in given[s]] for s in ("train", split))
        return DetectionData(train, val, names, "voc", warns)
    splits = _seeded_split([items[x] for x in xmls], val_fraction, seed)
    note = f"{root}: no ImageSets/Main/{{train,val}}.txt; {len(splits['val'])} images held out (seed {seed})"
    return DetectionData(splits["train"], splits["val"], names, "voc", warns, [note])


def _num(v: float) -> str:
    # the shortest text that reads back as the same float32: "81", "81.3"
    return np.format_float_positional(np.float32(v), trim="-")


def _xml(it: BoxItem, filename: str, names: list[str]) -> ET.Element:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = filename
    size = ET.SubElement(ann, "size")
    for key, v in (("width", it.width), ("height", it.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(v)
    ET.SubElement(ann, "segmented").text = "0"
    for box, label, crowd in zip(it.boxes.tolist(), it.labels.tolist(), it.iscrowd.tolist()):
        obj = ET.SubElement(ann, "object")
        for key, text in (("name", names[label]), ("pose", "Unspecified"), ("truncated", "0")):
            ET.SubElement(obj, key).text = text
        ET.SubElement(obj, "difficult").text = str(int(crowd))
        bndbox = ET.SubElement(obj, "bndbox")
        for key, v in zip(_FIELDS, box):
            ET.SubElement(bndbox, key).text = _num(v)
    ET.indent(ann, space="\t")
    return ann


def write_voc(
    splits: dict[str, list[BoxItem]],
    files: dict[str, list[str]],
    names: list[str],
    out: Path,
    place: Callable[[Path, Path], None],
) -> None:
    """Write the classic VOC layout; ``files`` are the image names (unique stems), ``place`` copies or links."""
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for split, items in splits.items():
        for it, fname in zip(items, files[split]):
            place(it.image, out / "JPEGImages" / fname)
            ET.ElementTree(_xml(it, fname, names)).write(
                out / "Annotations" / f"{Path(fname).stem}.xml", encoding="utf-8"
            )
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{Path(f).stem}\n" for f in files[split])
        )
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in names))
