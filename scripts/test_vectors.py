#!/usr/bin/env python3
"""Independent reference values for btcts leaf encoding v1 and batch trees.

Written from docs/proof-format.md alone, with nothing but hashlib, so that the
Rust implementation is checked against a second one. Prints the values the
unit tests in aggregator/src/leaf.rs and aggregator/src/merkle.rs pin.
"""
import hashlib
import struct


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def pos_leaf(chain_id: str, height: int, block_hash: bytes, digest: bytes) -> bytes:
    cid = chain_id.encode("ascii")
    return b"\x00\x01" + bytes([len(cid)]) + cid + struct.pack(">Q", height) + block_hash + digest


def digest_leaf(digest: bytes) -> bytes:
    return b"\x00\x02" + digest


def root(nodes):
    while len(nodes) > 1:
        nxt = []
        for i in range(0, len(nodes), 2):
            if i + 1 < len(nodes):
                nxt.append(sha256(b"\x01" + nodes[i] + nodes[i + 1]))
            else:
                nxt.append(nodes[i])  # odd node carried up unpaired
        nodes = nxt
    return nodes[0]


def vector_leaves(n):
    return [sha256(digest_leaf(sha256(struct.pack(">Q", i)))) for i in range(n)]


if __name__ == "__main__":
    pre = pos_leaf("cosmoshub-4", 1, b"\x11" * 32, b"\x22" * 32)
    print("pos leaf preimage", pre.hex())
    print("pos leaf hash    ", sha256(pre).hex())
    pre = digest_leaf(b"\xab" * 32)
    print("digest preimage  ", pre.hex())
    print("digest leaf hash ", sha256(pre).hex())
    for n in (1, 2, 3, 5, 1000):
        print(f"root {n:>4} leaves  ", root(vector_leaves(n)).hex())
