#!/usr/bin/env python3
"""Publish one message to a fanout exchange with pika, as uWSGI's docs do.

usage: publish.py HOST PORT EXCHANGE ROUTING_KEY < body
The body is read from stdin as bytes (so binary garbage can be sent).
"""
import sys

import pika

host, port, exchange, routing_key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = sys.stdin.buffer.read()
params = pika.ConnectionParameters(host=host, port=port,
                                   credentials=pika.PlainCredentials('guest', 'guest'))
connection = pika.BlockingConnection(params)
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type='fanout')
channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body)
connection.close()
