# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel ring buffer reader (/dev/kmsg) and netfilter LOG line parser.

Each /dev/kmsg record is ``prio,seq,ts_us,flags[,...];message`` followed by
optional continuation lines `` KEY=VALUE``. Sequence numbers are consecutive,
so a cursor (the next expected seq) gives exactly the records written after
it, and a gap means the ring wrapped and records were lost. The ring is only
read, never cleared.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

KMSG_PATH = '/dev/kmsg'

_ESCAPE = re.compile(r'\\x([0-9a-fA-F]{2})')
# Groups of a LOG line: [nested packet of an ICMP error], KEY=VALUE, OPT (hex), bare flag.
_TOKEN = re.compile(
    r'\[(?P<inner>[^\]]*)\]'
    r'|(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>\S*)'
    r'|OPT \((?P<opt>[0-9A-Fa-f]*)\)'
    r'|(?P<flag>\S+)'
)


class KmsgError(PflabError):
    pass


def _unescape(text):
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def parse_record(raw):
    """Parse one raw /dev/kmsg record into a dict, or None if it is not one."""
    header, sep, rest = raw.partition(';')
    parts = header.split(',')
    if not sep or len(parts) < 4:
        return None
    try:
        prio, seq, ts_us = int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None
    lines = rest.rstrip('\n').split('\n')
    properties = {}
    for line in lines[1:]:
        key, eq, value = line.strip().partition('=')
        if eq:
            properties[key] = value
    return {
        'seq': seq,
        'timestamp_us': ts_us,
        'level': prio & 7,
        'facility': prio >> 3,
        'flags': parts[3],
        'message': _unescape(lines[0]),
        'properties': properties,
    }


def parse_log_line(message, prefixes=None):
    """Parse a netfilter LOG/nft log line.

    With ``prefixes``, the longest one the message starts with is its prefix;
    without, the prefix is whatever stands before ``IN=``. Returns None when the
    message is not a LOG line (with one of the prefixes).
    """
    if prefixes:
        matching = [p for p in prefixes if message.startswith(p)]
        if not matching:
            return None
        prefix = max(matching, key=len)
        body = message[len(prefix):].lstrip()
    else:
        index = message.find('IN=')
        if index < 0:
            return None
        prefix, body = message[:index], message[index:]
    if not body.startswith('IN='):
        return None

    fields, ip_flags, l4_flags = {}, [], []
    proto = None
    for m in _TOKEN.finditer(body):
        if m.group('key'):
            key, value = m.group('key'), m.group('value')
            if proto and key in fields:
                key = '%s_%s' % (proto, key)  # e.g. the ICMP echo ID after the IP ID
            fields[key] = value
            if key == 'PROTO':
                proto = value
        elif m.group('opt') is not None:
            fields['OPT'] = m.group('opt')
        elif m.group('inner') is not None:
            fields['INNER'] = m.group('inner').strip()
        else:
            (l4_flags if proto else ip_flags).append(m.group('flag'))
    return {
        'prefix': prefix.strip(),
        'fields': fields,
        'ip_flags': ip_flags,
        'tcp_flags': l4_flags if proto == 'TCP' else [],
    }


def read_ring(path=KMSG_PATH):
    """Every record now in the ring, oldest first, parsed."""
    with Reader(path) as reader:
        return reader.records()


class Reader:
    """/dev/kmsg held open: ``skip`` reads to the ring's end without parsing messages and gives the cursor
    there; ``records`` then returns the records written since, parsed (a run reads the ring once, not twice)."""

    def __init__(self, path=KMSG_PATH):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _chunks(self):
        while True:
            try:
                chunk = os.read(self.fd, 16384)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    return
                if e.errno == errno.EPIPE:
                    continue  # the record under the reader was overwritten; the seq gap tells
                raise
            if not chunk:
                return
            yield chunk

    def skip(self):
        """The cursor after the last record now in the ring (its seq + 1; 0 when the ring is empty)."""
        cursor = 0
        for chunk in self._chunks():
            fields = chunk.split(b';', 1)[0].split(b',')
            if len(fields) >= 4 and fields[1].isdigit():
                cursor = int(fields[1]) + 1
        return cursor

    def records(self):
        """The records from the reader's place on, oldest first, parsed."""
        return [r for r in (parse_record(chunk.decode('utf-8', 'replace')) for chunk in self._chunks()) if r]


def cursor_after(records):
    """The cursor that selects records written after ``records``."""
    return records[-1]['seq'] + 1 if records else 0


def since(records, cursor):
    """Records with seq >= cursor, the number lost to a wrap, and the next cursor."""
    if records and cursor > records[-1]['seq'] + 1:
        raise KmsgError(
            'cursor %d is ahead of the newest record %d: the host rebooted or the cursor is not from this host'
            % (cursor, records[-1]['seq']))
    new = [r for r in records if r['seq'] >= cursor]
    lost, expected = 0, cursor
    for record in new:
        lost += record['seq'] - expected
        expected = record['seq'] + 1
    return new, lost, expected


def log_records(records, prefixes=None):
    """The LOG lines among ``records``, each with its parsed fields."""
    found = []
    for record in records:
        parsed = parse_log_line(record['message'], prefixes)
        if parsed:
            entry = dict((k, record[k]) for k in ('seq', 'timestamp_us', 'level', 'message'))
            entry.update(parsed)
            found.append(entry)
    return found
