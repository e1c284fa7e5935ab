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
        if self.read(0, 8) != b"vhdxfile":
            fail(path + ": no vhdxfile signature")
        best = None
        for off in (64 * 1024, 128 * 1024):
            h = bytearray(self.read(off, 4096))
            if h[:4] != b"head":
                continue
            want = struct.unpack("<I", h[4:8])[0]
            h[4:8] = b"\0\0\0\0"
            if crc32c(bytes(h)) != want:
                continue
            seq = struct.unpack("<Q", h[8:16])[0]
            if best is None or seq > best[0]:
                best = (seq, bytes(h))
        if best is None:
            fail(path + ": no valid header")
        h = best[1]
        self.data_write_guid = guid_of(h[32:48])
        if any(h[48:64]):
            fail(path + ": the log has entries (LogGuid set); replay is not done here")
        rt = bytearray(self.read(192 * 1024, 64 * 1024))
        want = struct.unpack("<I", rt[4:8])[0]
        rt[4:8] = b"\0\0\0\0"
        if rt[:4] != b"regi" or crc32c(bytes(rt)) != want:
            fail(path + ": region table damaged")
        regions = {}
        for i in range(struct.unpack("<I", rt[8:12])[0]):
            e = rt[16 + 32 * i:48 + 32 * i]
            regions[guid_of(e[:16])] = struct.unpack("<QI", e[16:28])
        md_off, _ = regions[self.METADATA_REGION]
        mt = self.read(md_off, 64 * 1024)
        if mt[:8] != b"metadata":
            fail(path + ": no metadata table")
        items = {}
        for i in range(struct.unpack("<H", mt[10:12])[0]):
            e = mt[32 + 32 * i:64 + 32 * i]
            off, length, flags = struct.unpack("<III", e[16:28])
            items[guid_of(e[:16])] = (self.read(md_off + off, length), flags)
        self.block, fp_flags = struct.unpack("<II", items[self.FILE_PARAMETERS][0])
        self.has_parent = bool(fp_flags & 2)
        self.size = struct.unpack("<Q", items[self.VIRTUAL_SIZE][0])[0]
        self.lss = struct.unpack("<I", items[self.LOGICAL_SECTOR][0])[0]
        self.chunk = (1 << 23) * self.lss // self.block
        self.fields = {"has_parent": self.has_parent, "size": self.size,
                       "block_size": self.block, "data_write_guid": self.data_write_guid}
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
        blocks = (self.size + self.block - 1) // self.block
        if self.has_parent:
            total = blocks + (blocks + self.chunk - 1) // self.chunk
        else:
            total = blocks + (blocks - 1) // self.chunk
        bat_off, _ = regions[self.BAT_REGION]
        self.bat = struct.unpack("<%dQ" % total, self.read(bat_off, 8 * total))
        present = [b for b in range(blocks) if self.bat[b + b // self.chunk] & 7 in (6, 7)]
        self.fields["present_blocks"] = len(present)

    def read(self, off, n):
        self.f.seek(off)
        return self.f.read(n)

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
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
