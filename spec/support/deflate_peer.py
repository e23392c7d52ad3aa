"""Python websockets' permessage-deflate, driven without sockets, for spec/codec_deflate_spec.lua.

usage: deflate_peer.py client <server's response>      (Python is the client that offered
                                                       "permessage-deflate; client_max_window_bits")
       deflate_peer.py server <client's offer> <smwb> <cmwb> <no_context_takeover 0|1>
                                                      (prints the response, then as below)
Each stdin line is the hex of one compressed message from the other side; each output line is
"<inflated hex> <the same message compressed by Python, hex>".
"""
import binascii
import sys

from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                      ServerPerMessageDeflateFactory)
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension


def main():
    role, header = sys.argv[1], sys.argv[2]
    (name, params), = parse_extension(header)
    if role == "client":
        ext = ClientPerMessageDeflateFactory(client_max_window_bits=True).process_response_params(params, [])
    else:
        smwb, cmwb, nct = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
        factory = ServerPerMessageDeflateFactory(server_no_context_takeover=nct,
                                                 client_no_context_takeover=nct,
                                                 server_max_window_bits=smwb or None,
                                                 client_max_window_bits=cmwb or None)
        response, ext = factory.process_request_params(params, [])
        print(build_extension([(name, response)]), flush=True)
    for line in sys.stdin:
        data = binascii.unhexlify(line.strip())
        frame = ext.decode(Frame(Opcode.BINARY, data, fin=True, rsv1=True))
        back = ext.encode(Frame(Opcode.BINARY, frame.data, fin=True))
        assert back.rsv1
        print(binascii.hexlify(frame.data).decode(), binascii.hexlify(back.data).decode(), flush=True)


main()
