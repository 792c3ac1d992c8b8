"""Registration order followed step by step (hooks.Registry), from synthetic snapshots."""

from ansible_collections.pflab.netfilter.plugins.module_utils import hooks


def chain(table_handle, chain_handle, hook, priority=0):
    return {'identity': (table_handle, chain_handle), 'hook': hook, 'priority': priority}


def test_legacy_then_nft_then_flush_ruleset():
    reg = hooks.Registry()
    reg.observe(1, 'iptables-legacy', hooks.netfilter_entries({'ip': {'filter'}, 'ip6': set()}, {}))
    first = {('inet', 'filter', 'input'): chain(1, 1, 'input'), ('inet', 'filter', 'output'): chain(1, 3, 'output')}
    reg.observe(2, 'nftables', hooks.netfilter_entries({'ip': {'filter'}, 'ip6': set()}, first))
    order = [(e['filter'], e['hook'], e['registered']) for e in reg.entries({}, [])]
    assert order == [('iptables-legacy', 'input', 1), ('iptables-legacy', 'forward', 2),
                     ('iptables-legacy', 'output', 3), ('nftables', 'input', 4), ('nftables', 'output', 5)]
    # the same chains again: nothing registers
    reg.observe(3, 'nftables', hooks.netfilter_entries({'ip': {'filter'}, 'ip6': set()}, first))
    assert max(e['registered'] for e in reg.entries({}, [])) == 5
    # flush ruleset re-creates the table: a new table handle, so the hooks register again
    again = {('inet', 'filter', 'input'): chain(2, 1, 'input'), ('inet', 'filter', 'output'): chain(2, 3, 'output')}
    reg.observe(4, 'nftables', hooks.netfilter_entries({'ip': {'filter'}, 'ip6': set()}, again))
    nft = [e for e in reg.entries({}, []) if e['filter'] == 'nftables']
    assert [(e['registered'], e['step']) for e in nft] == [(6, 4), (7, 4)]
    assert [e['removed_by_step'] for e in reg.removed_entries()] == [4, 4]


def test_iptables_nft_tables_removed_by_flush():
    reg = hooks.Registry()
    reg.observe(1, 'iptables-nft', hooks.netfilter_entries({'ip': set(), 'ip6': set()}, {('ip', 'filter', 'INPUT'): chain(1, 1, 'input')}))
    reg.observe(2, 'nftables', hooks.netfilter_entries({'ip': set(), 'ip6': set()}, {('inet', 'filter', 'input'): chain(2, 1, 'input')}))
    assert [e['filter'] for e in reg.entries({}, [])] == ['nftables']
    assert [(e['filter'], e['removed_by_step']) for e in reg.removed_entries()] == [('iptables-nft', 2)]


def test_log_prefixes():
    objects = [{'rule': {'family': 'inet', 'table': 'filter', 'chain': 'input', 'expr': [
        {'match': {}}, {'log': {'prefix': 'nft-input ', 'level': 'warn'}}, {'accept': None}]}},
        {'rule': {'family': 'inet', 'table': 'filter', 'chain': 'output', 'expr': [{'log': {'prefix': 'other'}}]}}]
    assert hooks.log_prefixes_nft(objects, 'inet', 'filter', 'input') == ['nft-input']
    rules = ['-p tcp -m tcp --dport 12345 -j LOG --log-prefix "ipt input" --log-level 4', '-j DROP']
    assert hooks.log_prefixes_xtables(rules) == ['ipt input']
