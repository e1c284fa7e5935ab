#!/usr/bin/env python3
"""An independent reader of VHD, VHDX and VDI chains, written from the
formats' published layouts (Microsoft "Virtual Hard Disk Image Format
Specification" 1.0; [MS-VHDX] 2.2-2.6; VirtualBox's VDI header as documented
in VDICore.h's comments and the VirtualBox SDK), for the tests of vdisk
create -b, rebase and commit: QEMU cannot open differencing VHD, VHDX or VDI
images, so this is their oracle.

usage:
  chain_fields.py fields IMAGE          JSON of the identity fields and checks
  chain_fields.py flatten OUT IMAGE...  IMAGE's guest content into OUT (raw),
                                        each IMAGE's parent being the next one
                                        (its identity checked); the last must
                                        not be a differencing image
  chain_fields.py partial IMAGE BLOCK FIRST COUNT
                                        makes the fully present block BLOCK of
                                        the differencing VHDX IMAGE partially
                                        present ([MS-VHDX] 2.5.1.1) with its
                                        logical sectors [FIRST, FIRST+COUNT)
                                        marked in its chunk's sector bitmap
                                        (a 1 MiB block appended at the end of
                                        the file when the chunk has none); the
                                        BAT is written in place (test input)
Exit 1 with a message on anything inconsistent.
"""
import json
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "testdata", "vendor"))
from make_vendor_samples import crc32c  # noqa: E402  (CRC-32C, [MS-VHDX] 2.2)

SECTOR = 512
MiB = 1 << 20
VHD_EPOCH = 946684800


def fail(msg):
    print("chain_fields: " + msg, file=sys.stderr)
    sys.exit(1)


def vhd_checksum(blob, at):
    b = bytearray(blob)
    b[at:at + 4] = b"\0\0\0\0"
    return (~sum(b)) & 0xFFFFFFFF


class Vhd:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        size = os.path.getsize(path)
        self.f.seek(size - 512)
        foot = self.f.read(512)
        if foot[:8] != b"conectix":
            fail(path + ": no footer cookie in the last sector")
        if struct.unpack(">I", foot[64:68])[0] != vhd_checksum(foot, 64):
            fail(path + ": footer checksum wrong")
        self.f.seek(0)
        copy = self.f.read(512)
        self.disk_type = struct.unpack(">I", foot[60:64])[0]
        if self.disk_type in (3, 4) and copy != foot:
            fail(path + ": the footer copy at offset 0 differs from the footer")
        self.size = struct.unpack(">Q", foot[48:56])[0]
        self.unique_id = str(uuid.UUID(bytes=foot[68:84]))
        self.timestamp = struct.unpack(">I", foot[24:28])[0]
        self.fields = {"disk_type": self.disk_type, "size": self.size,
                       "unique_id": self.unique_id}
        if self.disk_type == 2:
            return
        if self.disk_type not in (3, 4):
            fail(path + ": disk type %d" % self.disk_type)
        hoff = struct.unpack(">Q", foot[16:24])[0]
        self.f.seek(hoff)
        h = self.f.read(1024)
        if h[:8] != b"cxsparse":
            fail(path + ": no dynamic header cookie")
        if struct.unpack(">I", h[36:40])[0] != vhd_checksum(h, 36):
            fail(path + ": dynamic header checksum wrong")
        bat_at = struct.unpack(">Q", h[16:24])[0]
        entries, self.block = struct.unpack(">II", h[28:36])
        if entries * self.block < self.size:
            fail(path + ": BAT too short")
        self.f.seek(bat_at)
        self.bat = list(struct.unpack(">%dI" % entries, self.f.read(4 * entries)))
        bits = self.block // SECTOR
        self.bitmap_bytes = ((bits + 7) // 8 + 511) // 512 * 512
        used = []
        for i, e in enumerate(self.bat):
            if e == 0xFFFFFFFF:
                continue
            start = e * SECTOR
            if start + self.bitmap_bytes + self.block > size - 512:
                fail(path + ": block %d at sector %d runs into the footer" % (i, e))
            used.append((start, start + self.bitmap_bytes + self.block))
        used.sort()
        for a, b in zip(used, used[1:]):
            if b[0] < a[1]:
                fail(path + ": blocks overlap at %d" % b[0])
        self.fields["allocated_blocks"] = len(used)
        self.fields["block_size"] = self.block
        if self.disk_type == 4:
            self.parent_unique_id = str(uuid.UUID(bytes=h[40:56]))
            self.fields["parent_unique_id"] = self.parent_unique_id
            self.fields["parent_timestamp_unix"] = struct.unpack(">I", h[56:60])[0] + VHD_EPOCH
            self.fields["parent_name"] = h[64:576].decode("utf-16-be").rstrip("\0")
            locs = []
            for i in range(8):
                code, space, length, _, off = struct.unpack(">4sIII Q".replace(" ", ""),
                                                            h[576 + 24 * i:600 + 24 * i])
                if code == b"\0\0\0\0":
                    continue
                if off + length > size:
                    fail(path + ": locator %d data outside the file" % i)
                self.f.seek(off)
                data = self.f.read(length)
                if any(a < off + max(space, length) and off < b for a, b in used):
                    fail(path + ": locator %d data overlaps a block" % i)
                locs.append({"code": code.decode("ascii"), "space": space,
                             "length": length,
                             "text": data.decode("utf-16-le") if code in (b"W2ru", b"W2ku")
                             else data.hex()})
            self.fields["locators"] = locs

    def read_layer(self, offset, length):
        """Bytes of this layer and, per sector, whether this layer has it."""
        out = bytearray()
        mine = []
        if self.disk_type == 2:
            self.f.seek(offset)
            return self.f.read(length), [True] * (length // SECTOR)
        for s in range(offset // SECTOR, (offset + length) // SECTOR):
            b, k = divmod(s * SECTOR, self.block)
            e = self.bat[b]
            if e == 0xFFFFFFFF:
                out += bytes(SECTOR)
                mine.append(self.disk_type == 3)
                continue
            self.f.seek(e * SECTOR + (k // SECTOR) // 8)
            bit = self.f.read(1)[0] & (0x80 >> ((k // SECTOR) % 8))
            if self.disk_type == 3 or bit:
                self.f.seek(e * SECTOR + self.bitmap_bytes + k)
                out += self.f.read(SECTOR)
                mine.append(True)
            else:
                out += bytes(SECTOR)
                mine.append(False)
        return bytes(out), mine

    def is_child(self):
        return self.disk_type == 4

    def links_to(self, parent):
        if not isinstance(parent, Vhd) or parent.unique_id != self.parent_unique_id:
            fail("%s: parent unique ID %s is not %s's %s" % (
                self.path, self.parent_unique_id, parent.path,
                getattr(parent, "unique_id", "?")))


def vdi_uuid(b):
    return str(uuid.UUID(bytes_le=bytes(b)))


class Vdi:
    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        h = self.f.read(512)
        if struct.unpack("<I", h[0x40:0x44])[0] != 0xBEDA107F:
            fail(path + ": no VDI signature")
        self.type = struct.unpack("<I", h[0x4C:0x50])[0]
        blocks_off, data_off = struct.unpack("<II", h[0x154:0x15C])
        self.size, self.block, self.extra, nblocks, allocated = struct.unpack(
            "<QIIII", h[0x170:0x188])
        self.uuid_create = vdi_uuid(h[0x188:0x198])
        self.uuid_modify = vdi_uuid(h[0x198:0x1A8])
        self.uuid_linkage = vdi_uuid(h[0x1A8:0x1B8])
        self.uuid_parent_modify = vdi_uuid(h[0x1B8:0x1C8])
        self.f.seek(blocks_off)
        self.map = list(struct.unpack("<%dI" % nblocks, self.f.read(4 * nblocks)))
        self.data_off = data_off
        data = [e for e in self.map if e < 0xFFFFFFFE]
        if len(set(data)) != len(data):
            fail(path + ": two blocks share a data block")
        if len(data) != allocated:
            fail(path + ": cBlocksAllocated %d but the map uses %d" % (allocated, len(data)))
        fsize = os.path.getsize(path)
        for e in data:
            if data_off + (e + 1) * (self.block + self.extra) > fsize:
                fail(path + ": data block %d past the end of the file" % e)
        self.fields = {"image_type": self.type, "size": self.size,
                       "uuid_create": self.uuid_create, "uuid_modify": self.uuid_modify,
                       "uuid_linkage": self.uuid_linkage,
                       "uuid_parent_modify": self.uuid_parent_modify,
                       "allocated_blocks": allocated,
                       "zero_blocks": sum(1 for e in self.map if e == 0xFFFFFFFE)}

    def read_layer(self, offset, length):
        out = bytearray()
        mine = []
        for s in range(offset // SECTOR, (offset + length) // SECTOR):
            b, k = divmod(s * SECTOR, self.block)
            e = self.map[b]
            if e == 0xFFFFFFFF:
                out += bytes(SECTOR)
                mine.append(not self.is_child())
            elif e == 0xFFFFFFFE:
                out += bytes(SECTOR)
                mine.append(True)
            else:
                self.f.seek(self.data_off + e * (self.block + self.extra) + self.extra + k)
                out += self.f.read(SECTOR)
                mine.append(True)
        return bytes(out), mine

    def is_child(self):
        return self.type in (3, 4)

    def links_to(self, parent):
        if not isinstance(parent, Vdi) or parent.uuid_create != self.uuid_linkage:
            fail("%s: uuidLinkage %s is not %s's uuidCreate" % (
                self.path, self.uuid_linkage, parent.path))


def guid_of(b):
    return "{" + str(uuid.UUID(bytes_le=bytes(b))) + "}"


class Vhdx:
    FILE_PARAMETERS = "{caa16737-fa36-4d43-b3b6-33f0aa44e76b}"
    VIRTUAL_SIZE = "{2fa54224-cd1b-4876-b211-5dbed83bf4b8}"
    LOGICAL_SECTOR = "{8141bf1d-a96f-4709-ba47-f233a8faab5f}"
    PARENT_LOCATOR = "{a8d35f2d-b30b-454d-abf7-d3d84834ab0c}"
    BAT_REGION = "{2dc27766-f623-4200-9d64-115e9bfd4a08}"
    METADATA_REGION = "{8b7ca206-4790-4b9a-b8fe-575f050f886e}"
    VHDX_LOCATOR = "{b04aefb7-d19e-4a81-b789-25b8e9445913}"

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        self.file_size = os.path.getsize(path)
        self.overlay = []  # (offset, bytes) replayed from the log, oldest first
        if self.read(0, 8) != b"vhdxfile":
            fail(path + ": no vhdxfile signature")
        headers = {}
        for off in (64 * 1024, 128 * 1024):
            h = bytearray(self.read(off, 4096))
            if h[:4] != b"head":
                continue
            want = struct.unpack("<I", h[4:8])[0]
            h[4:8] = b"\0\0\0\0"
            if crc32c(bytes(h)) != want:
                continue
            h[4:8] = struct.pack("<I", want)
            headers[off] = bytes(h)
        if not headers:
            fail(path + ": no valid header")
        # 2.2.2: the valid header with the larger sequence number is current.
        seqs = {off: struct.unpack("<Q", h[8:16])[0] for off, h in headers.items()}
        if len(set(seqs.values())) != len(seqs):
            fail(path + ": both headers have sequence number %d" % seqs[64 * 1024])
        cur = max(seqs, key=seqs.get)
        h = headers[cur]
        if struct.unpack("<HH", h[64:68]) != (0, 1):
            fail(path + ": header version/log version not 1/0")
        self.data_write_guid = guid_of(h[32:48])
        self.fields = {"header_sequences": sorted(seqs.values()),
                       "file_write_guid": guid_of(h[16:32]),
                       "log_replayed_entries": 0}
        log_len, log_off = struct.unpack("<IQ", h[68:80])
        if any(h[48:64]):
            self.replay_log(log_off, log_len, h[48:64])
        regions = None
        for off in (192 * 1024, 256 * 1024):
            rt = bytearray(self.read(off, 64 * 1024))
            want = struct.unpack("<I", rt[4:8])[0]
            rt[4:8] = b"\0\0\0\0"
            if rt[:4] != b"regi" or crc32c(bytes(rt)) != want:
                fail(path + ": region table at %d damaged" % off)
            r = {}
            for i in range(struct.unpack("<I", rt[8:12])[0]):
                e = rt[16 + 32 * i:48 + 32 * i]
                r[guid_of(e[:16])] = struct.unpack("<QI", e[16:28])
            if regions is not None and r != regions:
                fail(path + ": the two region tables differ")
            regions = r
        md_off, md_len = regions[self.METADATA_REGION]
        mt = self.read(md_off, 64 * 1024)
        if mt[:8] != b"metadata":
            fail(path + ": no metadata table")
        items = {}
        spans = []
        for i in range(struct.unpack("<H", mt[10:12])[0]):
            e = mt[32 + 32 * i:64 + 32 * i]
            off, length, flags = struct.unpack("<III", e[16:28])
            if off < 64 * 1024 or off + length > md_len:
                fail(path + ": metadata item %d outside its region" % i)
            if guid_of(e[:16]) in items:
                fail(path + ": metadata item %s twice" % guid_of(e[:16]))
            spans.append((off, off + length))
            items[guid_of(e[:16])] = (self.read(md_off + off, length), flags)
        spans.sort()
        for a, b in zip(spans, spans[1:]):
            if b[0] < a[1]:
                fail(path + ": metadata items overlap at %d" % b[0])
        self.block, fp_flags = struct.unpack("<II", items[self.FILE_PARAMETERS][0])
        self.has_parent = bool(fp_flags & 2)
        self.size = struct.unpack("<Q", items[self.VIRTUAL_SIZE][0])[0]
        self.lss = struct.unpack("<I", items[self.LOGICAL_SECTOR][0])[0]
        self.chunk = (1 << 23) * self.lss // self.block
        self.fields.update({"has_parent": self.has_parent, "size": self.size,
                            "block_size": self.block, "data_write_guid": self.data_write_guid,
                            "log_guid": guid_of(h[48:64])})
        self.locator = {}
        if self.PARENT_LOCATOR in items:
            item, flags = items[self.PARENT_LOCATOR]
            self.fields["parent_locator_flags"] = flags
            self.fields["parent_locator_type"] = guid_of(item[:16])
            for i in range(struct.unpack("<H", item[18:20])[0]):
                ko, vo, kl, vl = struct.unpack("<IIHH", item[20 + 12 * i:32 + 12 * i])
                self.locator[item[ko:ko + kl].decode("utf-16-le")] = \
                    item[vo:vo + vl].decode("utf-16-le")
            self.fields["parent_locator"] = self.locator
        elif self.has_parent:
            fail(path + ": HasParent without a parent locator item")
        blocks = (self.size + self.block - 1) // self.block
        if self.has_parent:
            # 2.5: a sector bitmap entry after every whole chunk.
            total = (blocks + self.chunk - 1) // self.chunk * (self.chunk + 1)
        else:
            total = blocks + (blocks - 1) // self.chunk
        bat_off, bat_len = regions[self.BAT_REGION]
        if 8 * total > bat_len:
            fail(path + ": BAT region too small")
        self.bat = struct.unpack("<%dQ" % total, self.read(bat_off, 8 * total))
        # 2.5.1: states, places (1 MiB units, inside the file, apart from the
        # regions and from each other).
        used = [(bat_off, bat_off + bat_len), (md_off, md_off + md_len),
                (log_off, log_off + log_len), (0, MiB)]
        states = []
        for b in range(blocks):
            e = self.bat[b + b // self.chunk]
            st = e & 7
            states.append(st)
            if st in (4, 5) or (st == 7 and not self.has_parent):
                fail(path + ": block %d has state %d" % (b, st))
            if st in (6, 7):
                at = (e >> 20) * MiB
                used.append((at, at + min(self.block, self.size - b * self.block)))
                if used[-1][1] > self.size_of_file():
                    fail(path + ": block %d at %d past the end of the file" % (b, at))
        for c in range((blocks + self.chunk - 1) // self.chunk):
            i = c * (self.chunk + 1) + self.chunk
            if i >= total:
                break
            e = self.bat[i]
            if e & 7 not in (0, 6) or (e & 7 == 6 and not self.has_parent):
                fail(path + ": sector bitmap entry %d has state %d" % (c, e & 7))
            if e & 7 == 6:
                used.append(((e >> 20) * MiB, (e >> 20) * MiB + MiB))
            elif 7 in states[c * self.chunk:(c + 1) * self.chunk]:
                fail(path + ": chunk %d has a partially present block but no sector bitmap" % c)
        used.sort()
        for a, b in zip(used, used[1:]):
            if b[0] < a[1]:
                fail(path + ": blocks/regions overlap at %d" % b[0])
        self.fields["present_blocks"] = sum(1 for st in states if st in (6, 7))
        self.fields["partial_blocks"] = [b for b, st in enumerate(states) if st == 7]
        self.fields["block_states"] = states

    def size_of_file(self):
        return max([self.file_size] + [o + len(d) for o, d in self.overlay])

    def replay_log(self, log_off, log_len, log_guid):
        """2.3.3: the active sequence of log entries carrying the header's
        LogGuid, replayed oldest first into self.overlay."""
        def circ(pos, n):
            out = b""
            while n > 0:
                k = min(n, log_len - pos)
                out += self.raw(log_off + pos, k)
                pos, n = 0, n - k
            return out
        entries = {}
        for pos in range(0, log_len, 4096):
            hd = self.raw(log_off + pos, 64)
            if hd[:4] != b"loge":
                continue
            length, tail, seq, count = struct.unpack("<IIQI", hd[8:28])
            if length == 0 or length % 4096 or length > log_len or hd[32:48] != log_guid:
                continue
            blob = bytearray(circ(pos, length))
            want = struct.unpack("<I", blob[4:8])[0]
            blob[4:8] = b"\0\0\0\0"
            if crc32c(bytes(blob)) != want:
                continue
            dsec = (64 + 32 * count + 4095) // 4096
            if (dsec + 0) * 4096 > length:
                continue
            descs, k, ok = [], 0, True
            for i in range(count):
                d = blob[64 + 32 * i:96 + 32 * i]
                if d[:4] == b"zero":
                    zl, fo, ds = struct.unpack("<QQQ", d[8:32])
                    descs.append((fo, bytes(zl)))
                    ok = ok and ds == seq
                elif d[:4] == b"desc":
                    trailing, leading, fo, ds = struct.unpack("<4s8sQQ", d[4:32])
                    sec = blob[(dsec + k) * 4096:(dsec + k + 1) * 4096]
                    k += 1
                    ok = ok and ds == seq and sec[:4] == b"data" and \
                        struct.unpack("<I", sec[4:8])[0] == seq >> 32 and \
                        struct.unpack("<I", sec[4092:4096])[0] == seq & 0xFFFFFFFF
                    descs.append((fo, leading + sec[8:4092] + trailing))
                else:
                    ok = False
            flushed, last = struct.unpack("<QQ", hd[48:64])
            if ok and (dsec + k) * 4096 <= length:
                entries[pos] = (seq, tail, length, descs, flushed)
        best = None
        for start in entries:
            chain, p = [start], start
            while True:
                seq, tail, length = entries[p][:3]
                if tail in chain and (best is None or seq > best[0]):
                    best = (seq, chain[chain.index(tail):])
                n = (p + length) % log_len
                if n in entries and entries[n][0] == seq + 1 and n not in chain:
                    chain.append(n)
                    p = n
                else:
                    break
        if best is None:
            return
        if entries[best[1][-1]][4] > self.file_size:
            fail(self.path + ": log says the file was flushed past its end")
        for p in best[1]:
            self.overlay.extend(entries[p][3])
        self.fields["log_replayed_entries"] = len(best[1])

    def raw(self, off, n):
        self.f.seek(off)
        d = self.f.read(n)
        return d + bytes(n - len(d))

    def read(self, off, n):
        d = bytearray(self.raw(off, n))
        for o, data in self.overlay:
            a, b = max(o, off), min(o + len(data), off + n)
            if a < b:
                d[a - off:b - off] = data[a - o:b - o]
        return bytes(d)

    def read_layer(self, offset, length):
        out = bytearray()
        mine = []
        for s in range(offset // SECTOR, (offset + length) // SECTOR):
            b, k = divmod(s * SECTOR, self.block)
            e = self.bat[b + b // self.chunk]
            state, at = e & 7, (e >> 20) * MiB
            has = state == 6
            if state == 7:
                c = b // self.chunk
                be = self.bat[c * (self.chunk + 1) + self.chunk]
                sector_in_chunk = (s * SECTOR // self.lss) % (1 << 23)
                byte = self.read((be >> 20) * MiB + sector_in_chunk // 8, 1)[0]
                has = bool(byte & (1 << (sector_in_chunk % 8)))
            if has:
                out += self.read(at + k, SECTOR)
                mine.append(True)
            else:
                out += bytes(SECTOR)
                mine.append(not self.has_parent or state in (2, 3))
        return bytes(out), mine

    def is_child(self):
        return self.has_parent

    def links_to(self, parent):
        if not isinstance(parent, Vhdx) or \
                parent.data_write_guid != self.locator.get("parent_linkage"):
            fail("%s: parent_linkage %s is not %s's DataWriteGuid" % (
                self.path, self.locator.get("parent_linkage"), parent.path))


def make_partial(path, block, first, count):
    v = Vhdx(path)
    if not v.has_parent or v.overlay:
        fail(path + ": not a clean differencing VHDX")
    e = v.bat[block + block // v.chunk]
    if e & 7 != 6:
        fail(path + ": block %d is not fully present" % block)
    per_block = v.block // v.lss
    if first + count > per_block:
        fail(path + ": sectors past the block")
    with open(path, "rb") as f:
        f.seek(192 * 1024 + 16)
        regions = {}
        for i in range(2):
            ent = f.read(32)
            regions[guid_of(ent[:16])] = struct.unpack("<Q", ent[16:24])[0]
    bat_off = regions[Vhdx.BAT_REGION]
    c = block // v.chunk
    sb_index = c * (v.chunk + 1) + v.chunk
    sb = v.bat[sb_index]
    with open(path, "r+b") as f:
        if sb & 7 == 6:
            sb_at = (sb >> 20) * MiB
        else:
            sb_at = (os.path.getsize(path) + MiB - 1) // MiB * MiB
            f.truncate(sb_at + MiB)
        f.seek(sb_at)
        bits = bytearray(f.read(MiB))
        base = (block % v.chunk) * per_block
        for s in range(base + first, base + first + count):
            bits[s // 8] |= 1 << (s % 8)
        f.seek(sb_at)
        f.write(bits)
        f.seek(bat_off + 8 * sb_index)
        f.write(struct.pack("<Q", (sb_at // MiB) << 20 | 6))
        f.seek(bat_off + 8 * (block + block // v.chunk))
        f.write(struct.pack("<Q", (e & ~7) | 7))


def open_image(path):
    with open(path, "rb") as f:
        head = f.read(0x48)
    if head[:8] == b"vhdxfile":
        return Vhdx(path)
    if len(head) >= 0x44 and struct.unpack("<I", head[0x40:0x44])[0] == 0xBEDA107F:
        return Vdi(path)
    return Vhd(path)


def flatten(out, paths):
    chain = [open_image(p) for p in paths]
    for child, parent in zip(chain, chain[1:]):
        if not child.is_child():
            fail(child.path + " is not a differencing image")
        child.links_to(parent)
    if chain[-1].is_child():
        fail(chain[-1].path + " is a differencing image whose parent was not given")
    size = chain[0].size
    step = 1 << 20
    with open(out, "wb") as o:
        for at in range(0, size, step):
            n = min(step, size - at)
            buf = bytearray(n)
            need = [True] * (n // SECTOR)
            for layer in chain:
                if at >= layer.size:
                    break
                m = min(n, layer.size - at)
                data, mine = layer.read_layer(at, m)
                for i, has in enumerate(mine):
                    if need[i] and has:
                        buf[i * SECTOR:(i + 1) * SECTOR] = data[i * SECTOR:(i + 1) * SECTOR]
                        need[i] = False
            o.write(buf)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "fields":
        print(json.dumps(open_image(sys.argv[2]).fields, sort_keys=True))
    elif len(sys.argv) >= 4 and sys.argv[1] == "flatten":
        flatten(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 6 and sys.argv[1] == "partial":
        make_partial(sys.argv[2], *(int(a) for a in sys.argv[3:6]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
