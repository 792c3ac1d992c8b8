"""The drop witness's reading of a tracefs instance, and one trace from LOG records, sightings and drops."""

from ansible_collections.pflab.netfilter.plugins.module_utils import scenario, witness

# As this kernel (6.18) writes them, with another process's drop in between.
DROP = 'kfree_skb: skbaddr=000000003ca4b6f rx_sk=0000000000000000 protocol=2048 location=%s reason: %s'
TRACE = '\n'.join([
    '# tracer: nop',
    '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
    '         python3-5702    [001] ...1. 16219.282400: tracing_mark_write: pflab clock check',
    '         python3-5702    [001] d.s1. 16219.282492: console: nft-input IN=k3x9-client OUT= SRC=198.18.0.1 '
    'DST=198.18.0.2 PROTO=TCP SPT=40000 DPT=12345 SYN URGP=0 ',
    '       ksoftirqd-16      [000] ..s1. 16219.282493: ' + DROP % ('nft_do_chain+0x3e8/0x610', 'NETFILTER_DROP'),
    '         python3-5702    [001] ..s1. 16219.282498: ' + DROP % ('nf_hook_slow+0x9c/0xf0', 'NETFILTER_DROP'),
    '         python3-5702    [001] ..s1. 16219.290000: ' + DROP % (
        '__netif_receive_skb_core.constprop.0+0x4a1/0x1350', 'TC_INGRESS'),
])


def test_parse_keeps_this_process_only_in_nanoseconds():
    events = witness.parse(TRACE, {5702})
    assert [e['event'] for e in events] == ['marker', 'console', 'drop', 'drop']
    assert events[1]['time_ns'] == 16219282492000 and events[1]['message'].endswith('URGP=0')
    assert (events[2]['reason'], events[2]['filter']) == ('NETFILTER_DROP', 'netfilter')
    assert (events[3]['reason'], events[3]['filter']) == ('TC_INGRESS', 'tc')
    assert witness.parse(TRACE, {16})[0]['location'].startswith('nft_do_chain')


def test_dropped_by_reason_then_location():
    assert witness.dropped_by('nft_do_chain+0x1/0x2', 'NETFILTER_DROP') == 'nftables'
    assert witness.dropped_by('veth_xdp_rcv_skb+0x27d/0x590', 'NOT_SPECIFIED') == 'xdp'
    assert witness.dropped_by('do_xdp_generic+0x284/0x330', 'NOT_SPECIFIED') == 'xdp'
    assert witness.dropped_by('__dev_queue_xmit+0x318/0xf30', 'TC_EGRESS') == 'tc'
    assert witness.dropped_by('tcp_v4_rcv+0x1/0x2', 'NO_SOCKET') is None


PROBES = [dict(source='198.18.0.1', source_port=40000, address='198.18.0.2', port=12345, window_ns=[100000, 900000])]


def _log(prefix, seq, message):
    return dict(seq=seq, timestamp_us=seq, prefix=prefix, probe=1, direction='received', packet='syn',
                fields={}, message=message + ' ')


def _bpf(mark, when):
    return dict(source='bpf', prefix=mark, probe=1, packet='syn', time_ns=when, direction='received')


def test_one_trace_on_the_shared_clock():
    logged = [_log('nft-input', 7, 'nft-input IN=a'), _log('ipt-input', 8, 'ipt-input IN=a')]
    events = [dict(event='console', time_ns=300000, message='nft-input IN=a'),
              dict(event='console', time_ns=302000, message='ipt-input IN=a'),
              dict(event='drop', time_ns=302000, reason='NETFILTER_DROP', location='nf_hook_slow+0x1', filter='netfilter'),
              dict(event='drop', time_ns=950000, reason='NO_SOCKET', location='x', filter=None)]  # outside the window
    trace, drops, others = scenario.timeline(logged, [_bpf('xdp', 200500)], events + [
        dict(event='drop', time_ns=400000, reason='OTHERHOST', location='ip_rcv+0x1', filter=None)], PROBES, True)
    assert [(r['source'], r['prefix']) for r in trace] == [('bpf', 'xdp'), ('log', 'nft-input'), ('log', 'ipt-input'),
                                                           ('witness', 'drop')]
    assert [r.get('tie', False) for r in trace] == [False, False, True, True]  # the same microsecond
    assert [d['reason'] for d in drops] == ['NETFILTER_DROP'] and 'message' not in trace[1] and others == 1


def test_without_the_clock_sightings_are_not_ordered():
    logged = [_log('nft-input', 7, 'nft-input IN=a')]
    trace, drops, others = scenario.timeline(logged, [_bpf('xdp', 200500)], [], PROBES, False)
    assert [(r['source'], r.get('unordered', False)) for r in trace] == [('log', False), ('bpf', True)] and drops == []


def test_a_log_record_the_witness_missed_is_marked():
    logged = [_log('nft-input', 7, 'nft-input IN=a'), _log('ipt-input', 8, 'ipt-input IN=a')]
    events = [dict(event='console', time_ns=300000, message='nft-input IN=a')]
    trace, dummy, dummy = scenario.timeline(logged, [], events, PROBES, True)
    assert [(r['prefix'], r.get('unordered', False)) for r in trace] == [('nft-input', False), ('ipt-input', True)]
