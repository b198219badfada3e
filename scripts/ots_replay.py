"""Parse an .ots file with the stock `opentimestamps` library (not btcts code)
and print, as JSON, its file digest and every attestation with the message the
library computed for it by replaying the file's operations.

    .venv/bin/python scripts/ots_replay.py FILE.ots
"""
import json
import sys

from opentimestamps.core.notary import (
    BitcoinBlockHeaderAttestation,
    LitecoinBlockHeaderAttestation,
    PendingAttestation,
)
from opentimestamps.core.serialize import StreamDeserializationContext
from opentimestamps.core.timestamp import DetachedTimestampFile


def describe(msg, attestation):
    out = {"msg": msg.hex()}
    if isinstance(attestation, BitcoinBlockHeaderAttestation):
        out.update(kind="bitcoin", height=attestation.height)
    elif isinstance(attestation, LitecoinBlockHeaderAttestation):
        out.update(kind="litecoin", height=attestation.height)
    elif isinstance(attestation, PendingAttestation):
        out.update(kind="pending", uri=attestation.uri)
    else:
        out.update(kind="unknown")
    return out


def main(path):
    with open(path, "rb") as fd:
        stamp = DetachedTimestampFile.deserialize(StreamDeserializationContext(fd))
    print(
        json.dumps(
            {
                "hash_op": stamp.file_hash_op.TAG_NAME,
                "file_digest": stamp.file_digest.hex(),
                "attestations": [
                    describe(msg, att) for msg, att in stamp.timestamp.all_attestations()
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
