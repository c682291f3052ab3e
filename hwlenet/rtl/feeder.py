"""The operand feeder: turns the controller's tokens into the weights, operands and flags at the
systolic array's edges."""

from amaranth.hdl import Cat, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import divmod_constant, scaled
from .attributes import replica
from .controller import issue_signature
from .postproc import tile_tag_layout
from .rom import BankedRom
from .systolic import edge_signature

__all__ = ["OperandFeeder"]


class OperandFeeder(wiring.Component):
    """Reads, for each token, the weight word and every column's operand, and presents them
    with the token's flags and tag at the array's edge ``LATENCY = 10`` cycles later.

    A token of job ``j``, row tile ``t`` and reduction step ``k`` reads weight word
    ``base(j) + t * depth(j) + k``. Conv jobs read, for column ``c`` in phase ``p``, with
    ``(g, dy, dx) = plan.column_member(c, p)`` and weight ``k`` at ``(channel, ky, kx)``, input
    ``(channel, 2 * py + dy + ky, 2 * px + dx + kx)`` of the job's :class:`FeatureBuffer`, where
    ``(py, px)`` is window ``g`` of the block: ``window_col + g`` on the token's window, wrapped
    ``wraps = (window_col + g) // pooled_width`` times into the next pooled rows. Its linear
    position is ``lanes * (kq + base + wraps * wrap_rows) + offset`` with ``(kq, kr)`` from the
    k-table and ``offset = kr + 2 * g + dx + ((dy + ky % 2) // 2) * stride``, a constant for each
    phase, ``ky % 2`` and ``kr``: so the bank (``(dy + ky) % 2``, ``offset % lanes``) and the row
    (``... + offset // lanes``) come from a case with constants, and no division happens.
    Working columns read distinct banks, routed to them by a crossbar; idle columns read
    nothing in particular. The first dense job reads, for image slot ``c``, word ``row`` of
    sub-bank ``subbank`` of the slot's flattened-feature banks, ``(subbank, row)`` being entry
    ``k`` of its k-table; later dense jobs read word ``k`` of the previous dense job's bank of
    each slot.

    Every step is registered (for timing), and every block RAM's word goes into a register
    of its own with no reset and no enable, which synthesis can move into the block RAM's
    output register (:mod:`hwlenet.synth.bram`). A buffer's read ports are enabled only for
    the valid tokens of the job that reads it (the testbench's collision check relies on
    that):

    =====  ================================================================================
    cycle  what is registered at its start (the token arrives at cycle 0)
    =====  ================================================================================
    1      the token
    2      the k-tables' addresses, which address the k-table ROMs, and the weight tile's
           first word
    3      the weight ROM's address (the first word plus ``k``); the parts of each window's
           origin, ``base + copy * copy_words`` and ``wraps * wrap_rows``
    4      the same address again; the k-table words (out at cycle 3); each window's origin,
           their sum
    5      the weight ROM's address a third time, which addresses the
           :class:`~hwlenet.rtl.rom.BankedRom` (it reaches every block RAM of the ROM); each
           window's k-table row plus its origin; the case (lane, ``ky`` parity, phase) that
           places the windows in the banks; the flattened-feature banks' address (the dense
           k-table word), which addresses them
    6      every bank's read address (a window's row plus a constant) and enable and every
           column's bank, which address the banks
    7      the flattened-feature banks' words (out at cycle 6)
    8      every bank's word (out at cycle 7); each column's flattened feature
    9      each word of the token's buffer; the weight word (the ROM's ``LATENCY`` after
           cycle 5)
    10     every column's operand after the crossbar; the weights, flags and tag
    =====  ================================================================================

    Parameters
    ----------
    plan : HardwarePlan

    Attributes
    ----------
    input_read, mid_read : list of ReadPort interfaces
        One per bank of the input and middle feature buffers (:attr:`HardwarePlan.input_buffer`,
        :attr:`HardwarePlan.mid_buffer`).
    fc_read : list of ReadPort interfaces
        ``cols * fc_subbanks`` banks of flattened features, slot-major.
    dense_read : list of lists of ReadPort interfaces
        For each dense job but the last, one bank per image slot holding its outputs.
    """

    LATENCY = 10

    def __init__(self, *, plan):
        self.plan = plan
        cols = plan.cols
        operand = signed(plan.operand_width)

        def reads(count, depth):
            return In(ReadPort.Signature(addr_width=ceil_log2(depth), shape=operand)).array(count)

        members = {
            "issue": In(issue_signature(plan)),
            "edge": Out(edge_signature(rows=plan.rows, cols=cols, weight_width=plan.weight_width,
                                       operand_width=plan.operand_width,
                                       tag_shape=tile_tag_layout(plan))),
            "input_read": reads(plan.input_buffer.banks, plan.input_buffer.depth),
            "mid_read": reads(plan.mid_buffer.banks, plan.mid_buffer.depth),
            "fc_read": reads(cols * plan.fc_subbanks, plan.fc_input_depth),
        }
        for position, job in enumerate(plan.dense_jobs[:-1]):
            members[f"dense{position}_read"] = reads(cols, job.layer.out_shape[0])
        super().__init__(members)

    @property
    def dense_read(self):
        return [getattr(self, f"dense{position}_read")
                for position in range(len(self.plan.dense_jobs) - 1)]

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        cols, subbanks = plan.cols, plan.fc_subbanks
        conv, dense = plan.conv_jobs, plan.dense_jobs
        conv_reads = {conv[0].index: (plan.input_buffer, self.input_read),
                      conv[1].index: (plan.mid_buffer, self.mid_read)}

        def register(value, name, *, reset_less=False):
            registered = Signal(value.shape(), name=name, reset_less=reset_less)
            m.d.sync += registered.eq(value)
            return registered

        weights = plan.weight_rom()
        weight_shape = data.ArrayLayout(signed(weights.lane_width), weights.lanes)
        m.submodules.weight_rom = weight_rom = BankedRom(
            width=weight_shape.size, piece_depth=weights.piece_depth,
            init=[Value.cast(weight_shape.const(word)).value for word in weights.words])
        conv_entries, conv_bases, dense_entries, dense_bases = [], {}, [], {}
        for job in conv:
            conv_bases[job.index] = len(conv_entries)
            conv_entries.extend(job.ktable)
        for job in dense:
            dense_bases[job.index] = len(dense_entries)
            dense_entries.extend(job.ktable)
        lanes = plan.input_buffer.lanes
        conv_k = data.StructLayout({
            "row": unsigned(ceil_log2(max(row for row, _, _ in conv_entries) + 2)),
            "lane": unsigned(ceil_log2(lanes + 1)),
            "ky_parity": 1})
        dense_k = data.StructLayout({
            "subbank": unsigned(ceil_log2(max(s for s, _ in dense_entries) + 2)),
            "row": unsigned(ceil_log2(max(r for _, r in dense_entries) + 2))})
        m.submodules.conv_ktable = conv_rom = Memory(
            shape=conv_k, depth=len(conv_entries),
            init=[{"row": row, "lane": lane, "ky_parity": parity}
                  for row, lane, parity in conv_entries])
        m.submodules.dense_ktable = dense_rom = Memory(
            shape=dense_k, depth=len(dense_entries),
            init=[{"subbank": s, "row": r} for s, r in dense_entries])
        conv_port, dense_port = conv_rom.read_port(), dense_rom.read_port()

        # cycle 1: the k-tables' addresses and the weight tile's first word, registered
        token1 = register(self.issue.token, "token1")
        weight_addr = Signal.like(weight_rom.addr, name="weight_addr3")
        weight_tile = Signal.like(weight_rom.addr, name="weight_tile2")
        weight_k = Signal.like(token1.k, name="weight_k2")
        conv_addr = Signal.like(conv_port.addr, name="conv_ktable_addr2")
        dense_addr = Signal.like(dense_port.addr, name="dense_ktable_addr2")
        with m.If(token1.valid):
            m.d.sync += weight_k.eq(token1.k)
            with m.Switch(token1.job):
                for job in plan.jobs:
                    with m.Case(job.index):
                        # a case per row tile: the tile's first word is a constant
                        with m.Switch(token1.row_tile):
                            for row_tile in range(job.row_tiles):
                                with m.Case(row_tile):
                                    m.d.sync += weight_tile.eq(weights.base(job.layer.name)
                                                               + row_tile * job.depth)
                        if job.kind == "conv":
                            m.d.sync += conv_addr.eq(conv_bases[job.index] + token1.k)
                        else:
                            m.d.sync += dense_addr.eq(dense_bases[job.index] + token1.k)
        # cycle 2: the weight word's address (the tile's first word plus ``k``); cycles 3 and
        # 4: registered again, as it fans out to every block RAM
        m.d.sync += weight_addr.eq(weight_tile + weight_k)
        rom_addr = register(register(weight_addr, "weight_addr4"), "weight_addr5")
        m.d.comb += [weight_rom.addr.eq(rom_addr), conv_port.addr.eq(conv_addr),
                     dense_port.addr.eq(dense_addr)]

        # cycle 3: the k-table words come out and are registered; the weight word is the
        # banked ROM's output at cycle 9
        if 5 + BankedRom.LATENCY != self.LATENCY - 1:
            raise ValueError(f"a weight ROM read in {BankedRom.LATENCY} cycles does not meet "
                             f"the operands at cycle {self.LATENCY - 1}")
        token2 = register(token1, "token2")
        token3 = register(token2, "token3")
        token4 = register(token3, "token4")
        token5 = register(token4, "token5")
        entry = register(conv_port.data, "conv_entry4", reset_less=True)
        dense_entry = register(dense_port.data, "dense_entry4", reset_less=True)
        lane_bits = len(entry.lane)
        placement = register(Cat(entry.lane, entry.ky_parity, token4.phase), "placement5")

        # cycle 5: every bank's read address and every column's bank, registered
        addresses = {}

        def read_address(port, name, attrs=None):
            address = Signal.like(port.addr, name=name, attrs=attrs)
            addresses[name] = (port, address)
            return address

        input_rows = [read_address(port, f"input_addr6_{b}") for b, port in
                      enumerate(self.input_read)]
        mid_rows = [read_address(port, f"mid_addr6_{b}") for b, port in enumerate(self.mid_read)]
        # one copy of a dense buffer's address per column, each beside that column's LUT RAM
        dense_rows = [[read_address(port, f"dense{d}_addr6_{c}", replica())
                       for c, port in enumerate(ports)]
                      for d, ports in enumerate(self.dense_read)]
        conv_rows = {conv[0].index: input_rows, conv[1].index: mid_rows}
        banks = plan.input_buffer.banks
        bank6 = [Signal(range(banks), name=f"column_bank6_{c}") for c in range(cols)]
        for job in conv:
            buffer, _ = conv_reads[job.index]
            # cycle 2: the parts of each window's origin, which depends on the token alone;
            # cycle 3: the origin; cycle 4: the k-table row added to it
            copy = scaled(token2.copy, buffer.copy_words) if buffer.copies > 1 else 0
            start = register(token2.base + copy, f"start3_{job.layer.name}")
            window_rows = []
            for g in range(plan.windows):
                wraps, _ = divmod_constant(token2.window_col + g, job.pooled_width,
                                           job.pooled_width + plan.windows)
                wrapped = register(scaled(wraps, job.wrap_rows), f"wrapped3_{job.layer.name}_{g}")
                origin = register(start + wrapped, f"origin4_{job.layer.name}_{g}")
                window_rows.append(register(entry.row + origin,
                                            f"window_row5_{job.layer.name}_{g}"))
            with m.If(token5.job == job.index), m.Switch(placement):
                for phase in range(plan.phases):
                    for parity in range(2):
                        for lane in range(lanes):
                            with m.Case(lane | parity << lane_bits | phase << (lane_bits + 1)):
                                for c in range(cols):
                                    member = plan.column_member(c, phase)
                                    if member is None:
                                        continue
                                    g, dy, dx = member
                                    offset = (lane + 2 * g + dx
                                              + (dy + parity) // 2 * buffer.stride)
                                    word, bank_lane = divmod(offset, lanes)
                                    bank = (dy + parity) % 2 * lanes + bank_lane
                                    m.d.sync += [
                                        bank6[c].eq(bank),
                                        conv_rows[job.index][bank].eq(window_rows[g] + word)]
        for job in dense:
            with m.If(token5.job == job.index):
                if job is not dense[0]:
                    m.d.sync += [row.eq(token5.k) for row in dense_rows[dense.index(job) - 1]]
        for port, address in addresses.values():
            m.d.comb += port.addr.eq(address)
        # a buffer's read ports are enabled only for the valid tokens of the job reading it:
        # a write that meets a read of its address is then a real collision (the testbench
        # reports one; synthesis leaves the word read undefined)
        readers = {job.index: ports for job, ports in zip(
            [*conv, *dense[1:]], [self.input_read, self.mid_read, *self.dense_read])}
        for index, ports in readers.items():
            reading = register(token5.valid & (token5.job == index), f"reading6_{index}")
            m.d.comb += [port.en.eq(reading) for port in ports]
        # the flattened-feature banks (block RAMs) are addressed by the k-table word a cycle
        # early, so that each bank's word is registered beside it (cycle 7) before the
        # sub-bank multiplexer (cycle 8), as the weight ROM's pieces are
        fc_row = register(dense_entry.row, "fc_row5")
        m.d.comb += [port.addr.eq(fc_row) for port in self.fc_read]
        m.d.comb += [port.en.eq(token5.valid & (token5.job == dense[0].index))
                     for port in self.fc_read]
        fc_words = [register(port.data, f"fc_word7_{b}", reset_less=True)
                    for b, port in enumerate(self.fc_read)]

        # cycle 6: the banks are read; cycle 7: every bank's word is registered alone (in the
        # block RAM's output register) and each column's flattened feature is chosen among its
        # sub-banks; cycle 8: the words of the token's buffer are chosen; cycle 9: the crossbar
        # from the banks to the columns. Choosing the buffer a cycle early leaves cycle 9 a
        # bank multiplexer per column, which is what lets the 8x8 array route on an ECP5.
        subbank6 = register(register(dense_entry.subbank, "subbank5"), "subbank6")
        token6 = register(token5, "token6")
        token7 = register(token6, "token7")
        bank7 = [register(bank6[c], f"column_bank7_{c}") for c in range(cols)]
        subbank7 = register(subbank6, "subbank7")
        operand = self.edge.x_edge[0].shape()
        bank_words = {job.index: [register(port.data, f"{job.layer.name}_word8_{b}",
                                           reset_less=True)
                                  for b, port in enumerate(conv_reads[job.index][1])]
                      for job in conv}
        conv_words = [Signal(operand, name=f"conv_word9_{b}", reset_less=True)
                      for b in range(banks)]
        token8 = register(token7, "token8")
        with m.Switch(token8.job):
            for job in conv:
                with m.Case(job.index):
                    m.d.sync += [word.eq(bank_word) for word, bank_word
                                 in zip(conv_words, bank_words[job.index])]
        fc_columns = [Signal(operand, name=f"fc_column8_{c}", reset_less=True)
                      for c in range(cols)]
        with m.Switch(subbank7):
            for s in range(subbanks):
                with m.Case(s):
                    m.d.sync += [fc_columns[c].eq(fc_words[c * subbanks + s])
                                 for c in range(cols)]
        dense_bank_words = [[register(port.data, f"dense{d}_word8_{c}", reset_less=True)
                             for c, port in enumerate(ports)]
                            for d, ports in enumerate(self.dense_read)]
        token9 = register(token8, "token9")
        bank9 = [register(register(bank7[c], f"column_bank8_{c}"), f"column_bank9_{c}")
                 for c in range(cols)]
        dense_words = [Signal(operand, name=f"dense_word9_{c}", reset_less=True)
                       for c in range(cols)]
        with m.Switch(token8.job):
            for position, job in enumerate(dense):
                with m.Case(job.index):
                    words = fc_columns if position == 0 else dense_bank_words[position - 1]
                    m.d.sync += [word.eq(source) for word, source in zip(dense_words, words)]
        convolving = Signal()
        m.d.comb += convolving.eq(Cat(token9.job == job.index for job in conv).any())
        for c in range(cols):
            with m.If(convolving):
                with m.Switch(bank9[c]):
                    for bank in range(banks):
                        with m.Case(bank):
                            m.d.sync += self.edge.x_edge[c].eq(conv_words[bank])
            with m.Else():
                m.d.sync += self.edge.x_edge[c].eq(dense_words[c])
        m.d.sync += [self.edge.w_edge.eq(weight_rom.data), self.edge.tag.eq(token9.tag),
                     self.edge.flags.valid.eq(token9.valid),
                     self.edge.flags.clear.eq(token9.clear),
                     self.edge.flags.capture.eq(token9.capture)]
        return m
