"""A large read-only memory in block-RAM-sized pieces, read through registered OR levels."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["BLOCK_RAM_SHAPES", "BankedRom", "block_ram_piece_depth", "group_size",
           "piece_count"]

#: ``(width, depth)`` configurations of an 18-kbit block RAM read through one port (the
#: ECP5's ``DP16KD``/``PDPW16KD``; an iCE40 UP5K's 4-kbit ``SB_RAM40_4K`` holds a quarter).
BLOCK_RAM_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))


def piece_count(depth, piece_depth):
    """Pieces of ``piece_depth`` words that hold ``depth`` words (the last one may be short)."""
    return -(-depth // piece_depth)


def block_ram_piece_depth(width, depth):
    """The piece depth of a :class:`BankedRom` of ``depth`` words of ``width`` bits: the depth
    of the :data:`BLOCK_RAM_SHAPES` configuration that holds the ROM in the fewest block RAMs,
    the shallowest on a tie. So each piece is exactly one block RAM deep, and synthesis maps it
    onto block RAMs side by side with no multiplexer of its own before the piece's register."""
    for name, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TypeError(f"{name} must be a positive integer, not {value!r}")
    return min(BLOCK_RAM_SHAPES, key=lambda shape: (
        -(-width // shape[0]) * piece_count(depth, shape[1]), shape[1]))[1]


def group_size(pieces):
    """Pieces per group of a :class:`BankedRom` of ``pieces`` pieces: the smallest ``f`` with
    ``f * f >= pieces``, so that neither level of its OR tree joins more than ``f`` words."""
    size = 1
    while size * size < pieces:
        size += 1
    return size


class BankedRom(wiring.Component):
    """A ROM of ``len(init)`` words read ``LATENCY = 4`` cycles after its address.

    Word ``a`` is held by piece ``p = a // piece_depth`` at ``a % piece_depth`` (``piece_depth``
    a power of two, so ``p`` and the piece address are bit fields of ``a``). Each piece is a
    :class:`~amaranth.lib.memory.Memory` of its own with a synchronous read port (cycle 1),
    whose word goes into a register of the piece's own (cycle 2: beside its block RAM, where a
    block RAM's slow clock-to-out ends). Each word, masked to zero unless the address was in
    its piece (a flag per piece, registered alongside), is then ORed, in groups of
    ``f = group_size(pieces)`` pieces (cycle 3) and across the groups (cycle 4), each into a
    register. So no path crosses the device from a block RAM, no select fans out to every
    piece, no OR joins more than ``f`` words, and the word of the address presented in cycle
    ``t`` is on ``data`` in cycle ``t + LATENCY`` whatever the number of pieces. Memory
    ``piece_{p}`` of this block holds piece ``p``.

    The words are plain bit vectors (a caller with a layout packs them, e.g. with the layout's
    ``const``): per-field aliases in the Verilog collide with the names Yosys's ABC9 pass gives
    the bits it maps (Yosys 0.70 stops on an assertion).

    Parameters
    ----------
    width : int
        Bits of a word.
    init : sequence of int
        The words, at least one, each from 0 to ``2 ** width - 1``.
    piece_depth : int
        Words per piece, a power of two.
    """

    LATENCY = 4

    def __init__(self, *, width, init, piece_depth):
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise TypeError(f"width must be a positive integer, not {width!r}")
        if isinstance(piece_depth, bool) or not isinstance(piece_depth, int) \
                or piece_depth < 1 or piece_depth & (piece_depth - 1):
            raise TypeError(f"piece_depth must be a power of two, not {piece_depth!r}")
        init = list(init)
        if not init:
            raise ValueError("init must hold at least one word")
        for word in init:
            if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < 1 << width:
                raise ValueError(f"init words must be integers from 0 to 2 ** {width} - 1, "
                                 f"not {word!r}")
        self.width = width
        self.init = init
        self.piece_depth = piece_depth
        self.pieces = piece_count(len(init), piece_depth)
        self.group_size = group_size(self.pieces)
        super().__init__({
            "addr": In(range(len(init))),
            "data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        piece_bits = ceil_log2(self.piece_depth)
        width = self.width
        words = []
        for p in range(self.pieces):
            chunk = self.init[p * self.piece_depth:(p + 1) * self.piece_depth]
            memory = Memory(shape=width, depth=len(chunk), init=chunk)
            m.submodules[f"piece_{p}"] = memory
            port = memory.read_port()
            if len(chunk) > 1:
                m.d.comb += port.addr.eq(self.addr[:piece_bits])
            hit1 = Signal(name=f"hit1_{p}")
            hit2 = Signal(name=f"hit2_{p}")
            m.d.sync += [hit1.eq(self.addr[piece_bits:] == p if self.pieces > 1 else 1),
                         hit2.eq(hit1)]
            word = Signal(width, name=f"word2_{p}", reset_less=True)
            m.d.sync += word.eq(port.data)
            words.append(Mux(hit2, word, 0))

        def joined(members):
            total = members[0]
            for member in members[1:]:
                total = total | member
            return total

        groups = []
        for g in range(piece_count(self.pieces, self.group_size)):
            group = Signal(width, name=f"group3_{g}", reset_less=True)
            m.d.sync += group.eq(joined(words[g * self.group_size:(g + 1) * self.group_size]))
            groups.append(group)
        m.d.sync += self.data.eq(joined(groups))
        return m
