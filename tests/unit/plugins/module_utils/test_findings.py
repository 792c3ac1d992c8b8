"""Chain views, hook order and findings from synthetic readings (chains, facts' parsers, findings)."""

from ansible_collections.pflab.netfilter.plugins.module_utils import chains, facts, findings, xtables


def legacy(text):
    return xtables.parse_save(text)


def nft_chain(family, table, name, hook, prio=0, policy='accept', handle=1, dev=None):
    body = dict(family=family, table=table, name=name, handle=handle, type='filter', hook=hook, prio=prio,
                policy=policy)
    if dev:
        body['dev'] = dev
    return {'chain': body}


def nft_rule(family, table, chain, expr, handle=2):
    return {'rule': dict(family=family, table=table, chain=chain, handle=handle, expr=expr)}


def dport(proto, port):
    return {'match': {'op': '==', 'left': {'payload': {'protocol': proto, 'field': 'dport'}}, 'right': port}}


def reading(legacy_text='', objects=(), commands=None, interfaces=(), config=None, kernel_legacy=True,
            iptables_nft_text='', incompatible=()):
    """(facts, raw) as facts.read gives them, from synthetic parts."""
    objects = [{'table': {'family': f, 'name': t, 'handle': 1}}
               for f, t in sorted(set((o[k]['family'], o[k]['table']) for o in objects for k in o))] + list(objects)
    legacy_tables = {'ipv4': legacy(legacy_text), 'ipv6': {}}
    xt_nft = {'ipv4': legacy(iptables_nft_text), 'ipv6': {}}
    owners = dict((('ip', name), 'iptables-nft') for name in list(xt_nft['ipv4']) + list(incompatible))
    views = []
    for table in legacy_tables['ipv4'].values():
        views += chains.xtables_views('iptables-legacy', 'ip', table)
    for table in xt_nft['ipv4'].values():
        views += chains.xtables_views('iptables-nft', 'ip', table)
    views += chains.nft_views(objects, owners, skip=set(('ip', n) for n in xt_nft['ipv4']))
    found = {
        'kernel': {'release': '6.18.0', 'version': '6.18', 'legacy_xtables': kernel_legacy},
        'commands': commands or {'iptables': 'nf_tables', 'ip6tables': 'nf_tables'},
        'iptables_nft': {'ipv4': {'incompatible': list(incompatible)}, 'ipv6': {'incompatible': []}},
        'nftables': {'tables': facts._nft_tables(objects, owners)},
        'interfaces': list(interfaces),
        'nftables_config': config or {'exists': False},
        'hooks': chains.hook_points(views, list(interfaces)),
    }
    raw = {'views': views, 'objects': objects, 'legacy': legacy_tables, 'iptables_nft': xt_nft, 'owners': owners}
    return found, raw


def ids(found_facts):
    return dict((f['id'], f['severity']) for f in findings.find(*found_facts))


DOCKER = '''*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
COMMIT
'''


def test_xtables_view_reads_policy_jumps_and_scopes():
    view = chains.xtables_views('iptables-legacy', 'ip', legacy(DOCKER)['filter'])[1]
    assert (view.chain, view.policy, view.unconditional_drop, view.reached) == ('FORWARD', 'drop', 'policy drop',
                                                                                ['DOCKER'])
    scope, text, exact = view.accepts[0]
    assert scope['oif'] == 'docker0' and scope['ct'] == 'established' and exact
    assert not view.accepts[1][2]  # a negated match: not exact
    assert view.filters


def test_a_drop_rule_without_match_is_unconditional_only_in_the_base_chain():
    table = legacy('*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n-A INPUT -j X\n-A X -j DROP\nCOMMIT\n')['filter']
    view = chains.xtables_views('iptables-legacy', 'ip', table)[0]
    assert view.drops and view.unconditional_drop is None
    table = legacy('*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment "x y" -j DROP\nCOMMIT\n')['filter']
    assert chains.xtables_views('iptables-legacy', 'ip', table)[0].unconditional_drop.endswith('-j DROP')


def test_docker_beside_an_nft_forward_accept():
    found = ids(reading(DOCKER, [nft_chain('inet', 'lab', 'fwd', 'forward'),
                                 nft_rule('inet', 'lab', 'fwd', [dport('tcp', 80), {'accept': None}])]))
    assert found == {'accept-overridden': 'high', 'priority-tie': 'high', 'mixed-backends': 'info',
                     'stale-legacy': 'high'}


def test_an_accept_the_dropping_chain_also_accepts_is_not_overridden():
    text = '*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n' \
           '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n'
    objects = [nft_chain('inet', 'f', 'in', 'input', prio=10),
               nft_rule('inet', 'f', 'in', [dport('tcp', 22), {'accept': None}])]
    found = ids(reading(text, objects, commands={'iptables': 'legacy', 'ip6tables': 'legacy'}))
    assert found == {'mixed-backends': 'info'}  # different priorities: no tie; 22 accepted by both


def test_tie_severity_follows_what_packets_suffer():
    log_only = [nft_chain('inet', 'a', 'in', 'input'), nft_rule('inet', 'a', 'in', [{'log': {'prefix': 'x'}}])]
    dropper = [nft_chain('inet', 'b', 'in', 'input', handle=3),
               nft_rule('inet', 'b', 'in', [dport('tcp', 23), {'drop': None}], handle=4)]
    assert ids(reading('', log_only + dropper))['priority-tie'] == 'low'
    second = [nft_chain('inet', 'c', 'in', 'input', handle=5),
              nft_rule('inet', 'c', 'in', [dport('tcp', 25), {'drop': None}], handle=6)]
    assert ids(reading('', log_only + dropper + second))['priority-tie'] == 'medium'
    assert 'priority-tie' not in ids(reading('', log_only + [nft_chain('inet', 'd', 'in', 'input', prio=5)]))


def test_order_listed_by_the_kernel_is_used_instead_of_ties():
    text = '''family ip {
\thook input {
\t-0000000150 iptable_mangle_hook [iptable_mangle]
\t 0000000000 chain inet b in [nf_tables]
\t 0000000000 iptable_filter_hook [iptable_filter]
\t}
}
'''
    listed = facts.parse_hooks(text)
    assert listed == {'ipv4/input': [('legacy', 'ip', 'mangle'), ('inet', 'b', 'in'), ('legacy', 'ip', 'filter')]}
    found, raw = reading('*filter\n:INPUT DROP [0:0]\nCOMMIT\n', [nft_chain('inet', 'b', 'in', 'input')])
    points = chains.hook_points(raw['views'], [], listed)
    entries = [p for p in points if p['point'] == 'ipv4/input'][0]['entries']
    assert [(e['backend'], e['tie']) for e in entries] == [('nftables', False), ('iptables-legacy', False)]
    found['hooks'] = points
    assert 'priority-tie' not in ids((found, raw))


def test_native_rules_in_a_table_iptables_nft_owns():
    xt = '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n'
    objects = [nft_chain('ip', 'filter', 'INPUT', 'input'),
               nft_rule('ip', 'filter', 'INPUT', [dport('tcp', 22), {'counter': {'packets': 0, 'bytes': 0}},
                                                  {'accept': None}]),
               nft_rule('ip', 'filter', 'INPUT', [dport('tcp', 9999), {'drop': None}], handle=3)]
    found = findings.find(*reading('', objects, iptables_nft_text=xt))
    native = [f for f in found if f['id'] == 'nft-in-iptables-nft-table'][0]
    assert native['severity'] == 'medium'
    assert any('handle 3' in e for e in native['evidence'])
    assert any('2 rules in nf_tables, 1 shown' in e for e in native['evidence'])
    assert ids(reading('', objects, incompatible=['filter']))['nft-in-iptables-nft-table'] == 'high'


def test_kubernetes_chains_in_two_backends():
    hint = '*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n'
    services = '*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n'
    assert ids(reading(hint, [nft_chain('ip', 'filter', 'INPUT', 'input')], iptables_nft_text=services)) == {
        'kube-backend-mismatch': 'high'}
    assert 'kube-backend-mismatch' not in ids(reading(hint + services))


def test_flush_ruleset_config_with_foreign_tables(tmp_path):
    conf = tmp_path / 'nftables.conf'
    conf.write_text('#!/usr/sbin/nft -f\n# comment\nflush ruleset\ntable inet mine {\n}\n')
    config = facts.read_config(str(conf))
    assert config == {'path': str(conf), 'exists': True, 'starts_with_flush': True, 'flushes_ruleset': True,
                      'includes': False, 'tables': ['inet mine']}
    mine = [nft_chain('inet', 'mine', 'in', 'input')]
    docker = [nft_chain('ip', 'docker', 'fwd', 'forward', prio=5), nft_rule('ip', 'docker', 'fwd', [{'accept': None}])]
    assert 'flush-ruleset-config' not in ids(reading('', mine, config=config))
    assert ids(reading('', mine + docker, config=config))['flush-ruleset-config'] == 'high'
    conf.write_text('table inet mine {\n}\ninclude "/etc/nftables.d/*.nft"\nflush ruleset\n')
    config = facts.read_config(str(conf))
    assert not config['starts_with_flush'] and config['includes']
    assert ids(reading('', mine + docker, config=config))['flush-ruleset-config'] == 'low'


def test_xdp_and_tc_before_netfilter():
    iface = {'name': 'eth0', 'xdp': [{'mode': 'native', 'id': 7, 'name': 'xdp_drop', 'tag': 'ab'}],
             'tc': {'ingress': [{'kind': 'u32', 'pref': 1, 'protocol': 'ip', 'name': None, 'id': None,
                                 'direct_action': False, 'drops': False}], 'egress': []}}
    found_facts = reading('', [], interfaces=[iface])
    assert ids(found_facts) == {'xdp-before-netfilter': 'medium', 'tc-before-netfilter': 'low'}
    point = found_facts[0]['hooks'][0]
    assert point['point'] == 'ingress/eth0' and [e['layer'] for e in point['entries']] == ['xdp', 'tc']


def test_no_legacy_support_only_when_legacy_is_wanted():
    assert ids(reading('', [], kernel_legacy=False)) == {}
    found = ids(reading('', [], kernel_legacy=False, commands={'iptables': 'legacy', 'ip6tables': 'nf_tables'}))
    assert found == {'no-legacy-support': 'high'}


def test_worst_and_rank():
    assert findings.worst([]) is None
    assert findings.worst([{'severity': 'low'}, {'severity': 'high'}, {'severity': 'info'}]) == 'high'
    assert findings.rank('nonsense') == len(findings.SEVERITIES)


def test_digest_ignores_program_ids_but_not_rules():
    one = {'interfaces': [{'xdp': [{'id': 1, 'tag': 'a'}]}], 'legacy': {'rules': 1}}
    assert facts.digest(one) == facts.digest({'interfaces': [{'xdp': [{'id': 9, 'tag': 'a'}]}], 'legacy': {'rules': 1}})
    assert facts.digest(one) != facts.digest({'interfaces': [{'xdp': [{'id': 1, 'tag': 'a'}]}], 'legacy': {'rules': 2}})


def test_review_cases_native_ip_filter_negations_jumps_quotes():
    # a native "table ip filter" with chain input: *-nft-save prints it, but iptables-nft does not own it
    registered = {('ip', 'filter', 'input'): {}, ('ip', 'nat', 'PREROUTING'): {}}
    saves = {'ipv4': '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n', 'ipv6': ''}
    assert facts._owned(saves, registered) == {('ip', 'nat'): 'iptables-nft'}
    text = '''*filter
:INPUT DROP [0:0]
:ALLOW - [0:0]
-A INPUT ! -f -j ACCEPT
-A INPUT -i wg0 -j ALLOW
-A INPUT -i q'1 -j ACCEPT
-A ALLOW -j ACCEPT
COMMIT
'''
    view = chains.xtables_views('iptables-legacy', 'ip', legacy(text)['filter'])[0]
    # the negated fragment match and the jump's condition narrow; a rule that cannot be split is not read
    assert [exact for dummy, dummy, exact in view.accepts] == [False, False]


def test_listed_order_applies_only_among_equal_priorities():
    listed = {'ipv4/input': [('inet', 'late', 'in'), ('inet', 'b', 'in')]}
    objects = [nft_chain('inet', 'b', 'in', 'input'), nft_chain('inet', 'late', 'in', 'input', prio=10, handle=2),
               nft_chain('inet', 'c', 'in', 'input', handle=3)]
    views = chains.nft_views(objects, {})
    entries = chains.hook_points(views, [], listed)[0]['entries']
    assert [(e['table'], e['tie']) for e in entries] == [('b', True), ('c', True), ('late', False)]


def test_flush_config_not_loaded_at_boot_is_low():
    config = {'path': '/etc/nftables.conf', 'exists': True, 'flushes_ruleset': True, 'includes': False,
              'tables': [], 'loaded_at_boot': False}
    docker = [nft_chain('ip', 'docker', 'fwd', 'forward', prio=5), nft_rule('ip', 'docker', 'fwd', [{'accept': None}])]
    assert ids(reading('', docker, config=config))['flush-ruleset-config'] == 'low'
