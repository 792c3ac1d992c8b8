"""kmsg record and LOG line parsing, on records captured on a 6.18 kernel."""

import os

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import kmsg

FIXTURE = os.path.join(os.path.dirname(__file__), 'fixtures', 'kmsg_records.txt')


def raw_records():
    """Split the fixture into raw records: continuation lines start with a space."""
    records = []
    with open(FIXTURE) as f:
        for line in f:
            if line.startswith(' '):
                records[-1] += line
            else:
                records.append(line)
    return records


@pytest.fixture
def ring():
    return [kmsg.parse_record(raw) for raw in raw_records()]


def test_record_header_and_message(ring):
    first = ring[0]
    assert (first['seq'], first['timestamp_us'], first['level'], first['facility']) == (89, 222502, 6, 0)
    assert first['message'] == 'rcu: \tRCU restricting CPUs from NR_CPUS=256 to nr_cpu_ids=2.'


def test_continuation_lines_become_properties(ring):
    record = next(r for r in ring if r['seq'] == 191)
    assert record['properties'] == {'SUBSYSTEM': 'acpi', 'DEVICE': '+acpi:PNP0A08:00'}
    assert 'SUBSYSTEM' not in record['message']


def test_not_a_record():
    assert kmsg.parse_record('no header here') is None
    assert kmsg.parse_record('4,x,1,-;text') is None


def test_since_counts_records_lost_in_gaps(ring):
    new, lost, cursor = kmsg.since(ring, 341)
    assert [r['seq'] for r in new] == [341, 342, 344, 345, 346, 347, 348, 351, 352, 353]
    assert lost == 3  # 343, 349 and 350 are missing
    assert cursor == 354


def test_since_counts_records_lost_before_the_oldest(ring):
    new, lost, cursor = kmsg.since(ring, 80)
    assert new[0]['seq'] == 89
    assert lost == 9 + 96 + 147 + 1 + 2  # 80-88, 91-186, 194-340, 343, 349-350
    assert lost == 353 - 80 + 1 - len(new)


def test_since_at_the_end_is_empty(ring):
    assert kmsg.since(ring, 354) == ([], 0, 354)


def test_cursor_from_another_boot_is_refused(ring):
    with pytest.raises(kmsg.KmsgError, match='ahead of the newest record'):
        kmsg.since(ring, 10000)


def test_iptables_log_line_without_space_after_prefix(ring):
    record = next(r for r in ring if r['seq'] == 341)
    line = kmsg.parse_log_line(record['message'], ['ipt-input', 'ipt-output'])
    assert line['prefix'] == 'ipt-input'
    assert line['fields']['IN'] == 'to-a'
    assert line['fields']['OUT'] == ''
    assert line['fields']['MAC'] == '8a:78:69:2c:33:46:d6:47:9c:98:a8:6e:08:00'
    assert (line['fields']['SRC'], line['fields']['DST']) == ('198.18.0.1', '198.18.0.2')
    assert (line['fields']['LEN'], line['fields']['TTL'], line['fields']['PROTO']) == ('60', '64', 'TCP')
    assert (line['fields']['SPT'], line['fields']['DPT']) == ('37200', '12345')
    assert line['ip_flags'] == ['DF']
    assert line['tcp_flags'] == ['SYN']


def test_tcp_flags_of_a_fin(ring):
    record = next(r for r in ring if r['seq'] == 347)
    assert kmsg.parse_log_line(record['message'])['tcp_flags'] == ['ACK', 'FIN']


def test_ipv6_line_with_tcp_options(ring):
    record = next(r for r in ring if r['seq'] == 352)
    line = kmsg.parse_log_line(record['message'], ['ip6-input '])
    assert line['prefix'] == 'ip6-input'
    assert line['fields']['SRC'] == '2001:0002:0000:0000:0000:0000:0000:0001'
    assert (line['fields']['HOPLIMIT'], line['fields']['FLOWLBL']) == ('64', '408126')
    assert line['fields']['OPT'] == '020405A00402080AF67E1BF9000000000103030A'
    assert line['tcp_flags'] == ['SYN']


def test_without_prefixes_the_prefix_is_what_precedes_in(ring):
    lines = kmsg.log_records(ring)
    assert [line['seq'] for line in lines] == [341, 342, 344, 345, 346, 347, 348, 351, 352, 353]
    assert [line['prefix'] for line in lines][-3:] == ['nft-input', 'ip6-input', 'nft-input']


def test_prefix_filter_keeps_kernel_order(ring):
    lines = kmsg.log_records(ring, ['nft-input', 'ip6-input'])
    assert [(line['seq'], line['prefix']) for line in lines] == [
        (351, 'nft-input'), (352, 'ip6-input'), (353, 'nft-input')]


def test_longest_matching_prefix_wins(ring):
    record = next(r for r in ring if r['seq'] == 341)
    assert kmsg.parse_log_line(record['message'], ['ipt', 'ipt-input'])['prefix'] == 'ipt-input'


def test_other_subsystems_are_not_log_lines(ring):
    acpi = next(r for r in ring if r['seq'] == 190)
    assert kmsg.parse_log_line(acpi['message']) is None
    assert kmsg.parse_log_line(acpi['message'], ['ACPI']) is None  # prefix matches, no IN= after it


def test_icmp_fields_after_proto_do_not_overwrite_ip_fields():
    message = ('icmp-in IN=to-a OUT= SRC=198.18.0.1 DST=198.18.0.2 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF '
               'PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 ')
    line = kmsg.parse_log_line(message, ['icmp-in'])
    assert line['fields']['ID'] == '4242'
    assert line['fields']['ICMP_ID'] == '7'
    assert line['tcp_flags'] == []


def test_live_ring_is_ordered_and_cursor_is_past_it():
    """Reads the real /dev/kmsg (read-only)."""
    ring = kmsg.read_ring()
    seqs = [r['seq'] for r in ring]
    assert seqs and seqs == sorted(set(seqs))
    assert kmsg.since(ring, kmsg.cursor_after(ring)) == ([], 0, seqs[-1] + 1)
