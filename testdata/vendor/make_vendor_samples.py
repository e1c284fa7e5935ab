#!/usr/bin/env python3
"""Builds, byte for byte, small disk images laid out as VMware Workstation,
Windows (Disk Management / Hyper-V), Microsoft Virtual Server and VirtualBox
write them, from the formats' published layouts -- so that vdisk's tests do
not rest only on images made by qemu-img (issue #17 item 2). Fetches nothing.

usage: make_vendor_samples.py OUTDIR

For every image NAME.EXT it also writes NAME.raw, the guest disk the image
holds (a sparse file), and a line "NAME.EXT NAME.raw" in OUTDIR/samples.txt.
Provenance of every field: testdata/README.md, "Vendor-layout samples".
"""
import hashlib
import os
import struct
import sys
import uuid

MiB = 1 << 20
SECTOR = 512


def roundup(n, unit):
    return (n + unit - 1) // unit * unit


def pattern(length, seed):
    """Deterministic bytes with no zero run longer than a few bytes."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(b"%d/%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:length])


def fixed_uuid(name):
    """A GUID that is the same on every run (RFC 4122 version 5)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "vdisk-testdata/" + name)


class Guest:
    """The guest disk: a size and the writes made to it, in order."""

    def __init__(self, size, writes):
        self.size = size
        self.writes = writes  # [(offset, bytes)] in the order the guest wrote them

    def read(self, offset, length):
        buf = bytearray(length)
        for off, data in self.writes:
            lo, hi = max(off, offset), min(off + len(data), offset + length)
            if lo < hi:
                buf[lo - offset:hi - offset] = data[lo - off:hi - off]
        return bytes(buf)

    def touched_units(self, unit):
        """Indices of `unit`-sized blocks in the order they were first written."""
        seen = []
        for off, data in self.writes:
            for i in range(off // unit, (off + len(data) - 1) // unit + 1):
                if i not in seen:
                    seen.append(i)
        return seen

    def write_raw(self, path):
        with open(path, "wb") as f:
            f.truncate(self.size)
            for off, data in self.writes:
                f.seek(off)
                f.write(data)


def sample_guest(size, seed):
    # Data at the start (a boot sector), inside a block, across a 1 MiB and a
    # 2 MiB boundary (two blocks of VDI and VHD, two grains of VMDK), and in
    # the last sector; written out of LBA order, as guests do.
    return Guest(size, [
        (1 * MiB + 4096, pattern(8192, seed + 1)),
        (0, pattern(512, seed)),
        (2 * MiB - 1024, pattern(2048, seed + 2)),
        (size - 512, pattern(512, seed + 3)),
        (1 * MiB - 512, pattern(1024, seed + 4)),
    ])


# --------------------------------------------------------------------------
# VHD: Microsoft "Virtual Hard Disk Image Format Specification" 1.0 (2006).
# Footer and dynamic disk header fields are big-endian.

VHD_EPOCH_2024 = 757382400  # 2024-01-01T00:00:00Z in seconds since 2000-01-01


def vhd_chs(size):
    """Appendix "CHS Calculation" of the specification."""
    total = size // SECTOR
    total = min(total, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def vhd_checksum(blob):
    return (~sum(blob)) & 0xFFFFFFFF


def vhd_footer(size, data_offset, disk_type, creator, creator_version, unique_id):
    cyl, heads, spt = vhd_chs(size)
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">I", f, 8, 2)  # features: reserved bit, always set
    struct.pack_into(">I", f, 12, 0x00010000)  # file format version 1.0
    struct.pack_into(">Q", f, 16, data_offset)
    struct.pack_into(">I", f, 24, VHD_EPOCH_2024)
    f[28:32] = creator
    struct.pack_into(">I", f, 32, creator_version)
    f[36:40] = b"Wi2k"  # creator host OS: Windows
    struct.pack_into(">Q", f, 40, size)  # original size
    struct.pack_into(">Q", f, 48, size)  # current size
    struct.pack_into(">HBB", f, 56, cyl, heads, spt)
    struct.pack_into(">I", f, 60, disk_type)
    f[68:84] = unique_id.bytes  # the specification's UUID, stored as is
    struct.pack_into(">I", f, 64, vhd_checksum(f))
    return bytes(f)


def write_vhd_dynamic(path, guest, creator, creator_version, name, block=2 * MiB):
    """A dynamic VHD laid out as Windows writes one: the footer copy at 0,
    the dynamic header at 512, the BAT at 1536, then the blocks (each a
    512-byte-padded sector bitmap and the block's data) in the order the
    guest first wrote them, and the footer at the end."""
    size = guest.size
    entries = (size + block - 1) // block
    bat_offset = 1536
    bitmap_bytes = roundup(block // SECTOR // 8, SECTOR)
    next_sector = (bat_offset + roundup(entries * 4, SECTOR)) // SECTOR
    footer = vhd_footer(size, 512, 3, creator, creator_version, fixed_uuid(name))
    bat = [0xFFFFFFFF] * entries
    blocks = []
    for idx in guest.touched_units(block):
        bat[idx] = next_sector
        data = guest.read(idx * block, block)
        bitmap = bytearray(bitmap_bytes)
        # A bit per sector, most significant bit first (section "Sector
        # Bitmap"): set for every sector the guest wrote.
        for s in range(block // SECTOR):
            lo = idx * block + s * SECTOR
            if any(off < lo + SECTOR and lo < off + len(d) for off, d in guest.writes):
                bitmap[s // 8] |= 0x80 >> (s % 8)
        blocks.append((next_sector, bytes(bitmap) + data))
        next_sector += (bitmap_bytes + block) // SECTOR
    hdr = bytearray(1024)
    hdr[0:8] = b"cxsparse"
    struct.pack_into(">Q", hdr, 8, 0xFFFFFFFFFFFFFFFF)  # data offset: unused
    struct.pack_into(">Q", hdr, 16, bat_offset)
    struct.pack_into(">I", hdr, 24, 0x00010000)  # header version
    struct.pack_into(">I", hdr, 28, entries)
    struct.pack_into(">I", hdr, 32, block)
    struct.pack_into(">I", hdr, 36, vhd_checksum(hdr))
    with open(path, "wb") as f:
        f.write(footer)
        f.write(hdr)
        f.seek(bat_offset)
        f.write(b"".join(struct.pack(">I", e) for e in bat))
        f.write(b"\xff" * (roundup(entries * 4, SECTOR) - entries * 4))
        for sector, blob in blocks:
            f.seek(sector * SECTOR)
            f.write(blob)
        f.seek(next_sector * SECTOR)
        f.write(footer)


# --------------------------------------------------------------------------
# VDI: VirtualBox's VDI header 1.1 (VDICore.h: VDIPREHEADER, VDIHEADER1PLUS).
# Little-endian; UUIDs as RTUUID (first three fields little-endian).

def write_vdi(path, guest, image_type, uuid_create, uuid_modify, uuid_link=None,
              uuid_parent_modify=None, parent=None, block=MiB):
    """A dynamic (type 1) or differencing (type 4) VDI as VirtualBox 4 and
    later write them: the header 1.1 "plus" (0x190 bytes), the block map at
    1 MiB and the data at the next 1 MiB boundary (VDI_DATA_ALIGN), blocks
    numbered in the order the guest first wrote them. A differencing image
    stores whole blocks: the part the guest did not write is copied from
    `parent` (a Guest), as VirtualBox does."""
    size = guest.size
    count = (size + block - 1) // block
    off_blocks = MiB
    off_data = off_blocks + roundup(count * 4, MiB)
    bmap = [0xFFFFFFFF] * count
    order = guest.touched_units(block)
    for n, idx in enumerate(order):
        bmap[idx] = n
    h = bytearray(off_blocks)
    text = b"<<< Oracle VM VirtualBox Disk Image >>>\n"
    h[0:len(text)] = text
    struct.pack_into("<II", h, 0x40, 0xBEDA107F, 0x00010001)
    struct.pack_into("<III", h, 0x48, 0x190, image_type, 0)
    struct.pack_into("<II", h, 0x154, off_blocks, off_data)
    struct.pack_into("<IIII", h, 0x15C, 0, 0, 0, SECTOR)  # legacy geometry: unset
    struct.pack_into("<Q", h, 0x170, size)
    struct.pack_into("<IIII", h, 0x178, block, 0, count, len(order))
    nil = uuid.UUID(int=0)
    h[0x188:0x198] = uuid_create.bytes_le
    h[0x198:0x1A8] = uuid_modify.bytes_le
    h[0x1A8:0x1B8] = (uuid_link or nil).bytes_le
    h[0x1B8:0x1C8] = (uuid_parent_modify or nil).bytes_le
    struct.pack_into("<IIII", h, 0x1C8, 0, 0, 0, SECTOR)  # LCHS: unset
    with open(path, "wb") as f:
        f.write(h)
        f.write(b"".join(struct.pack("<I", e) for e in bmap))
        for n, idx in enumerate(order):
            data = bytearray(parent.read(idx * block, block) if parent else bytes(block))
            for off, d in guest.writes:
                lo, hi = max(off, idx * block), min(off + len(d), (idx + 1) * block)
                if lo < hi:
                    data[lo - idx * block:hi - idx * block] = d[lo - off:hi - off]
            f.seek(off_data + n * block)
            f.write(data)


# --------------------------------------------------------------------------
# VMDK: VMware "Virtual Disk Format 1.1" (hosted sparse extent header,
# grain directory and tables; the descriptor file's grammar).

def write_vmdk_monolithic_sparse(path, guest, name, grain_sectors=128, gtes_per_gt=512):
    """A monolithicSparse VMDK as VMware Workstation writes it: header
    version 1 with flags 0x3 (valid new-line test, redundant grain table),
    the embedded descriptor at sector 1 (20 sectors), the redundant grain
    directory at sector 21 followed by its grain tables, then the grain
    directory and its tables, the metadata rounded up to a whole grain
    (overHead); grains in the order the guest first wrote them."""
    capacity = guest.size // SECTOR
    grain = grain_sectors * SECTOR
    num_gts = (capacity + grain_sectors * gtes_per_gt - 1) // (grain_sectors * gtes_per_gt)
    gd_sectors = roundup(num_gts * 4, SECTOR) // SECTOR
    gt_sectors = roundup(gtes_per_gt * 4, SECTOR) // SECTOR
    desc_offset, desc_size = 1, 20
    rgd = desc_offset + desc_size
    gd = rgd + gd_sectors + num_gts * gt_sectors
    overhead = roundup(gd + gd_sectors + num_gts * gt_sectors, grain_sectors)

    cid = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") | 1
    disk_uuid = fixed_uuid(name)
    cyl = min(capacity // (255 * 63), 65535)
    desc = (
        "# Disk DescriptorFile\n"
        "version=1\n"
        'encoding="UTF-8"\n'
        "CID=%08x\n"
        "parentCID=ffffffff\n"
        'isNativeSnapshot="no"\n'
        'createType="monolithicSparse"\n'
        "\n"
        "# Extent description\n"
        'RW %d SPARSE "%s"\n'
        "\n"
        "# The Disk Data Base \n"
        "#DDB\n"
        "\n"
        'ddb.adapterType = "lsilogic"\n'
        'ddb.geometry.cylinders = "%d"\n'
        'ddb.geometry.heads = "255"\n'
        'ddb.geometry.sectors = "63"\n'
        'ddb.longContentID = "%s"\n'
        'ddb.toolsInstallType = "4"\n'
        'ddb.toolsVersion = "12352"\n'
        'ddb.uuid = "%s"\n'
        'ddb.virtualHWVersion = "19"\n'
    ) % (cid, capacity, os.path.basename(path), cyl,
         hashlib.sha256(name.encode()).hexdigest()[:24] + "%08x" % cid,
         " ".join("%02x" % b for b in disk_uuid.bytes))
    desc_bytes = desc.encode()
    assert len(desc_bytes) <= desc_size * SECTOR

    hdr = bytearray(SECTOR)
    struct.pack_into("<III", hdr, 0, 0x564D444B, 1, 0x3)  # "KDMV", version, flags
    struct.pack_into("<QQQQ", hdr, 12, capacity, grain_sectors, desc_offset, desc_size)
    struct.pack_into("<IQQQ", hdr, 44, gtes_per_gt, rgd, gd, overhead)
    hdr[72] = 0  # uncleanShutdown
    hdr[73:77] = b"\n \r\n"  # the new-line detection characters
    struct.pack_into("<H", hdr, 77, 0)  # compressAlgorithm: none

    gtes = [0] * (num_gts * gtes_per_gt)
    grains = []
    next_sector = overhead
    for idx in guest.touched_units(grain):
        gtes[idx] = next_sector
        grains.append((next_sector, guest.read(idx * grain, grain)))
        next_sector += grain_sectors
    with open(path, "wb") as f:
        f.write(hdr)
        f.seek(desc_offset * SECTOR)
        f.write(desc_bytes)
        for gd_start in (rgd, gd):
            f.seek(gd_start * SECTOR)
            first_gt = gd_start + gd_sectors
            f.write(b"".join(struct.pack("<I", first_gt + i * gt_sectors) for i in range(num_gts)))
            f.seek(first_gt * SECTOR)
            f.write(b"".join(struct.pack("<I", e) for e in gtes))
        for sector, data in grains:
            f.seek(sector * SECTOR)
            f.write(data)
        f.truncate(next_sector * SECTOR)

# --------------------------------------------------------------------------
# VHDX: Microsoft "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format" v20160714
# (section 2.1 layout, 2.2 header section, 2.3 log, 2.4 BAT, 2.6 metadata).
# Little-endian; GUIDs in Windows byte order; checksums CRC-32C.

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def guid_le(text):
    return uuid.UUID(text).bytes_le


def write_vhdx_dynamic(path, guest, name, block=32 * MiB, logical=512, physical=4096):
    """A dynamic VHDX as Hyper-V lays it out: the file identifier at 0,
    headers at 64 and 128 KiB, region tables at 192 and 256 KiB, a 1 MiB log
    at 1 MiB (empty: the file was closed cleanly, LogGuid is zero), the
    metadata region at 2 MiB, the BAT at 3 MiB, payload blocks from 4 MiB,
    each 1 MiB aligned and FULLY_PRESENT, in the order the guest first wrote
    them; 32 MiB blocks, `logical`-byte logical sectors (the BAT's chunk
    ratio depends on it, section 2.4.1)."""
    size = guest.size
    log_off, log_len = 1 * MiB, 1 * MiB
    meta_off, meta_len = 2 * MiB, 1 * MiB
    bat_off = 3 * MiB
    chunk_ratio = (1 << 23) * logical // block
    data_blocks = (size + block - 1) // block
    bat_entries = data_blocks + (data_blocks - 1) // chunk_ratio
    bat_len = roundup(bat_entries * 8, MiB)
    next_off = bat_off + bat_len

    f_id = bytearray(64 * 1024)
    f_id[0:8] = b"vhdxfile"
    creator = "Microsoft Windows 10.0.20348.0".encode("utf-16-le")
    f_id[8:8 + len(creator)] = creator

    def header(seq):
        h = bytearray(4096)
        h[0:4] = b"head"
        struct.pack_into("<Q", h, 8, seq)
        h[16:32] = fixed_uuid(name + "/file-write").bytes_le
        h[32:48] = fixed_uuid(name + "/data-write").bytes_le
        # LogGuid (48..64) zero: no log entries to replay.
        struct.pack_into("<HHIQ", h, 64, 0, 1, log_len, log_off)
        struct.pack_into("<I", h, 4, crc32c(h))
        return bytes(h) + bytes(64 * 1024 - 4096)

    regions = bytearray(64 * 1024)
    regions[0:4] = b"regi"
    struct.pack_into("<II", regions, 8, 2, 0)
    regions[16:32] = guid_le("2DC27766-F623-4200-9D64-115E9BFD4A08")  # BAT
    struct.pack_into("<QII", regions, 32, bat_off, bat_len, 1)
    regions[48:64] = guid_le("8B7CA206-4790-4B9A-B8FE-575F050F886E")  # metadata
    struct.pack_into("<QII", regions, 64, meta_off, meta_len, 1)
    struct.pack_into("<I", regions, 4, crc32c(regions))

    items = [  # (item id, value, flags: 2 IsVirtualDisk, 4 IsRequired)
        ("CAA16737-FA36-4D43-B3B6-33F0AA44E76B", struct.pack("<II", block, 0), 4),
        ("2FA54224-CD1B-4876-B211-5DBED83BF4B8", struct.pack("<Q", size), 6),
        ("BECA12AB-B2E6-4523-93EF-C309E000C746", fixed_uuid(name).bytes_le, 6),
        ("8141BF1D-A96F-4709-BA47-F233A8FAAB5F", struct.pack("<I", logical), 6),
        ("CDA348C7-445D-4471-9CC9-E9885251C556", struct.pack("<I", physical), 6),
    ]
    meta = bytearray(meta_len)
    meta[0:8] = b"metadata"
    struct.pack_into("<H", meta, 10, len(items))
    value_off = 64 * 1024
    for i, (item, value, flags) in enumerate(items):
        e = 32 + i * 32
        meta[e:e + 16] = guid_le(item)
        struct.pack_into("<III", meta, e + 16, value_off, len(value), flags)
        meta[value_off:value_off + len(value)] = value
        value_off += len(value)

    bat = [0] * bat_entries
    payload = []
    for idx in guest.touched_units(block):
        bat[idx + idx // chunk_ratio] = (next_off // MiB) << 20 | 6  # PAYLOAD_BLOCK_FULLY_PRESENT
        payload.append((next_off, idx))
        next_off += block
    with open(path, "wb") as f:
        f.write(f_id)
        f.write(header(1))
        f.write(header(2))
        f.write(regions)
        f.write(regions)
        f.seek(meta_off)
        f.write(meta)
        f.seek(bat_off)
        f.write(b"".join(struct.pack("<Q", e) for e in bat))
        for off, idx in payload:
            # Only the guest's writes: the rest of a new block reads as zeros
            # and stays a hole in the host file.
            for woff, d in guest.writes:
                lo, hi = max(woff, idx * block), min(woff + len(d), (idx + 1) * block)
                if lo < hi:
                    f.seek(off + lo - idx * block)
                    f.write(d[lo - woff:hi - woff])
        f.truncate(next_off)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    samples = []

    def emit(name, guest):
        guest.write_raw(os.path.join(out, name + ".raw"))

    # Hyper-V / Windows Disk Management: creator "win ", version 10.0.
    g = sample_guest(64 * MiB, 10)
    write_vhd_dynamic(os.path.join(out, "hyperv-dynamic.vhd"), g, b"win ", 0x000A0000,
                      "hyperv-dynamic")
    emit("hyperv-dynamic", g)
    samples.append(("hyperv-dynamic.vhd", "hyperv-dynamic.raw"))

    # Virtual Server 2004 (creator "vs  ", version 1.0): sizes come from a CHS
    # geometry, so the current size is cylinders x heads x sectors x 512.
    cyl = 130
    while True:
        size = cyl * 16 * 63 * SECTOR
        c, h, s = vhd_chs(size)
        if c * h * s * SECTOR == size:
            break
        cyl += 1
    g = sample_guest(size, 20)
    write_vhd_dynamic(os.path.join(out, "virtualserver-dynamic.vhd"), g, b"vs  ", 0x00010000,
                      "virtualserver-dynamic")
    emit("virtualserver-dynamic", g)
    samples.append(("virtualserver-dynamic.vhd", "virtualserver-dynamic.raw"))

    # VirtualBox: a dynamic base and a differencing child linked by UUID.
    base = sample_guest(16 * MiB, 30)
    base_create, base_modify = fixed_uuid("vbox-base"), fixed_uuid("vbox-base-modify")
    write_vdi(os.path.join(out, "vbox-base.vdi"), base, 1, base_create, base_modify)
    emit("vbox-base", base)
    samples.append(("vbox-base.vdi", "vbox-base.raw"))
    child_writes = Guest(base.size, [(1 * MiB + 6144, pattern(4096, 41)),
                                     (5 * MiB, pattern(1024, 42))])
    write_vdi(os.path.join(out, "vbox-child.vdi"), child_writes, 4, fixed_uuid("vbox-child"),
              fixed_uuid("vbox-child-modify"), base_create, base_modify, parent=base)
    merged = Guest(base.size, base.writes + child_writes.writes)
    emit("vbox-child", merged)
    samples.append(("vbox-child.vdi", "vbox-child.raw"))

    # VMware Workstation: monolithicSparse, 20 MiB (two grain tables' worth
    # is more than one: 512 x 64 KiB = 32 MiB per table, so one table).
    g = sample_guest(40 * MiB, 50)
    write_vmdk_monolithic_sparse(os.path.join(out, "workstation-sparse.vmdk"), g,
                                 "workstation-sparse")
    emit("workstation-sparse", g)
    samples.append(("workstation-sparse.vmdk", "workstation-sparse.raw"))

    # Hyper-V: dynamic VHDXs with 32 MiB blocks, as New-VHD makes them by
    # default (512-byte logical, 4 KiB physical sectors) and as a 4Kn disk
    # (4 KiB logical sectors, which qemu-img does not open). The guest
    # writes whole 4 KiB sectors, across the first block boundary too.
    g = Guest(96 * MiB, [(0, pattern(4096, 60)), (32 * MiB - 8192, pattern(16384, 61)),
                         (70 * MiB, pattern(65536, 62)), (96 * MiB - 4096, pattern(4096, 63))])
    write_vhdx_dynamic(os.path.join(out, "hyperv-dynamic.vhdx"), g, "hyperv-dynamic-vhdx",
                       logical=512)
    emit("hyperv-dynamic-vhdx", g)
    samples.append(("hyperv-dynamic.vhdx", "hyperv-dynamic-vhdx.raw"))
    write_vhdx_dynamic(os.path.join(out, "hyperv-4kn.vhdx"), g, "hyperv-4kn-vhdx", logical=4096)
    samples.append(("hyperv-4kn.vhdx", "hyperv-dynamic-vhdx.raw"))

    with open(os.path.join(out, "samples.txt"), "w") as f:
        for image, raw in samples:
            f.write("%s %s\n" % (image, raw))


if __name__ == "__main__":
    main()
