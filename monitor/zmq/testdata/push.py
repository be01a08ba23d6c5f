#!/usr/bin/env python3
"""Push one multipart command with libzmq (Debian's python3-zmq).

usage: push.py ENDPOINT PART... ; a part "@-" is read from stdin as bytes.
"""
import sys

import zmq

endpoint, parts = sys.argv[1], sys.argv[2:]
frames = [sys.stdin.buffer.read() if p == '@-' else p.encode() for p in parts]
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.setsockopt(zmq.LINGER, 10000)
sock.connect(endpoint)
sock.send_multipart(frames)
sock.close()  # lingers until the message is delivered (or 10 s)
ctx.term()
