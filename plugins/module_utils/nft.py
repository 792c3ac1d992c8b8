# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables engine over the libnftables JSON API (reached through nft_api).

Wanted rules, given as nft rule text, are first added in a scratch network
namespace, which validates them and yields the JSON the kernel gives back; rules
are compared in that form. The change to the real ruleset is one transaction
built as JSON from that kernel output and from validated fields (names, hooks,
priorities, devices): user text never reaches the target as text, so no field can
carry a second command into it. Whole rulesets (``ruleset``, ``ruleset_file``) are
text by nature: they cannot ``include`` files, and errors about a file carry none
of its lines.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import re

from ansible_collections.pflab.netfilter.plugins.module_utils import files, names, netns, proc
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import shown
from ansible_collections.pflab.netfilter.plugins.module_utils.nft_api import NftError, message, open_api

FAMILIES = ('ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev')
RULE_MAX = 65536  # characters of one rule
RULESET_MAX = 16 << 20  # bytes of a whole ruleset
_RULE_KEYS_IGNORED = frozenset(['handle', 'family', 'table', 'chain', 'index'])
_BASE_KEYS = ('type', 'hook', 'prio', 'dev')
# Rule text ends at a newline or ';', which would start a second command.
_RULE_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f;]')
# Quoted strings and comments, where a word is not a keyword.
_NOT_CODE = re.compile(r'"[^"]*"|#[^\n]*')
_INCLUDE = re.compile(r'(?<![\w.$@/\\-])include(?![\w./\\-])')
# "device \"eth0\"" or "devices = { eth0, eth1 }" in a chain's text listing
_DEVICES = re.compile(r'\bdevices = \{([^}]*)\}|\bdevice "([^"]+)"')


ARGUMENT_SPEC = dict(
    family=dict(type='str', default='inet', choices=list(FAMILIES)),
    table=dict(type='str'),
    chains=dict(type='list', elements='dict', options=dict(
        name=dict(type='str', required=True),
        type=dict(type='str', choices=['filter', 'nat', 'route']),
        hook=dict(type='str', choices=['prerouting', 'input', 'forward', 'output', 'postrouting', 'ingress', 'egress']),
        priority=dict(type='int'),
        policy=dict(type='str', choices=['accept', 'drop']),
        device=dict(type='str'),
        rules=dict(type='list', elements='str'),
    )),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    exclusive=dict(type='bool', default=False),
    netns=dict(type='str'),
    host=dict(type='bool', default=False),
    ruleset_file=dict(type='path'),
    ruleset=dict(type='str'),
    reload=dict(type='bool', default=False),
    api=dict(type='str', default='auto', choices=['auto', 'binding', 'cli']),
)
ARGUMENT_RULES = dict(
    required_one_of=[('table', 'ruleset_file', 'ruleset')],
    mutually_exclusive=[('table', 'ruleset_file', 'ruleset'), ('chains', 'ruleset_file'), ('chains', 'ruleset')],
)


_ZERO_COUNTER = {'counter': {'packets': 0, 'bytes': 0}}


def _zero_counters(value):
    """Counter values zeroed in a list of statements or objects (counters sit at that level)."""
    if isinstance(value, dict):
        return dict((k, _zero_counters(v) if k == 'expr' else v) for k, v in value.items())
    return [_ZERO_COUNTER if isinstance(e, dict) and 'counter' in e else e for e in value]


def rule_key(rule):
    """A rule's identity: everything the kernel gives back but its place and counter values."""
    body = dict((k, v) for k, v in rule.items() if k not in _RULE_KEYS_IGNORED)
    body['expr'] = _zero_counters(body.get('expr', []))
    return json.dumps(body, sort_keys=True)


def scratch_opener(module, prefer='auto'):
    """A context manager factory: an api on a fresh scratch namespace that holds the network
    devices named (netdev base chains need theirs), removed afterwards."""
    @contextlib.contextmanager
    def opener(devices=()):
        with netns.scratch() as name:
            for number, device in enumerate(sorted(set(devices))):
                rc, dummy, err = proc.run(['ip', '-n', name, 'link', 'add', 'name', device, 'type', 'veth',
                                           'peer', 'name', 'pflpeer%d' % number])
                if rc != 0:
                    raise NftError('cannot make device %s in the scratch namespace: %s' % (device, err.strip()))
            api = open_api(module, name, prefer)
            try:
                yield api
            finally:
                api.close()
    return opener


def includes(text):
    """Line numbers of ``include`` statements in nft text (outside strings and comments)."""
    code = _NOT_CODE.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), text)
    return sorted(set(code.count('\n', 0, m.start()) + 1 for m in _INCLUDE.finditer(code)))


def _check_rule(chain, number, rule):
    where = 'chain %s rule %d' % (chain, number)
    if not isinstance(rule, str) or not rule.strip():
        raise NftError('%s: a rule is non-empty text, got %s' % (where, shown(rule)))
    if len(rule) > RULE_MAX:
        raise NftError('%s is %d characters; at most %d' % (where, len(rule), RULE_MAX))
    bad = _RULE_FORBIDDEN.search(rule)
    if bad:
        raise NftError('%s (%s): one rule per entry, without %s' % (
            where, shown(rule), 'newlines or other control characters' if bad.group(0) != ';' else '";"'))


class Chain:
    """One chain as asked for."""

    def __init__(self, spec, family):
        self.name = names.check('nft_name', spec['name'], 'chain name')
        self.hook = spec.get('hook')
        self.type = spec.get('type') or ('filter' if self.hook else None)
        self.priority = spec.get('priority')
        self.device = spec.get('device')
        self.policy = spec.get('policy')
        self.rules = spec.get('rules')
        if not self.hook and (spec.get('type') or self.priority is not None or self.device or self.policy):
            raise NftError('chain %s: type, priority, device and policy need a hook (a base chain)' % self.name)
        if self.hook and self.priority is None:
            self.priority = 0
        if self.device is not None:
            names.check('ifname', self.device, 'chain %s: device' % self.name)
        if family == 'netdev' and self.hook and not self.device:
            raise NftError('chain %s: a netdev base chain needs a device' % self.name)
        for number, rule in enumerate(self.rules or [], 1):
            _check_rule(self.name, number, rule)

    def command(self, family, table):
        """The chain as a JSON ``add`` command."""
        body = {'family': family, 'table': table, 'name': self.name}
        if self.hook:
            body.update(type=self.type, hook=self.hook, prio=self.priority)
            if self.device:
                body['dev'] = self.device
            if self.policy:
                body['policy'] = self.policy
        return {'add': {'chain': body}}

    def base_differs(self, existing):
        """Why an existing chain's hook cannot be made this chain's in place, or None."""
        have = tuple(existing.get(k) for k in _BASE_KEYS)
        want = (self.type, self.hook, self.priority, self.device) if self.hook else (None, None, None, None)
        if have != want:
            return 'chain %s exists as %s; nft cannot change type, hook, priority or device in place ' \
                   '(remove the chain first)' % (self.name, dict(zip(_BASE_KEYS, have)))
        return None


class Request:
    def __init__(self, family, table, chains, state, exclusive):
        if family not in FAMILIES:
            raise NftError('unknown family %s' % shown(family))
        self.family, self.state, self.exclusive = family, state, exclusive
        self.table = names.check('nft_name', table, 'table name')
        self.chains = [Chain(spec, family) for spec in chains or []]
        chain_names = [c.name for c in self.chains]
        if len(set(chain_names)) != len(chain_names):
            raise NftError('a chain is given twice in %s' % shown(chain_names))
        self.delete_table = state == 'absent' and chains is None

    @property
    def ref(self):
        return '%s %s' % (self.family, self.table)

    def table_command(self, verb='add'):
        return {verb: {'table': {'family': self.family, 'name': self.table}}}

    def chain_ref(self, chain):
        return {'family': self.family, 'table': self.table, 'name': chain}

    def devices(self):
        return [c.device for c in self.chains if c.device]

    def rule_lines(self):
        """(command, where) for every wanted rule, in order."""
        lines = []
        for chain in self.chains:
            for number, rule in enumerate(chain.rules or [], 1):
                lines.append(('add rule %s %s %s' % (self.ref, chain.name, rule),
                              'chain %s rule %d (%s)' % (chain.name, number, shown(rule))))
        return lines


def _as_input(objects, skeleton=False):
    """A listing as input: handles dropped (in input they mean positions).

    A skeleton keeps table, chains, sets and maps only: no rules, no set elements.
    """
    dropped = ('handle', 'elem') if skeleton else ('handle',)
    out = []
    for obj in objects or []:
        kind, body = next(iter(obj.items()))
        if not (skeleton and kind == 'rule'):
            out.append({'add': {kind: dict((k, v) for k, v in body.items() if k not in dropped)}})
    return {'nftables': out}


def by_chain(objects, family=None, table=None):
    """({chain name: chain}, {chain name: [rules]}) of listed objects; of table ``family table`` only when given."""
    chains, rules = {}, {}
    for obj in objects or []:
        kind, body = next(iter(obj.items()))
        if family is not None and (body.get('family'), body.get('table')) != (family, table):
            continue
        if kind == 'chain':
            chains[body['name']] = body
            rules.setdefault(body['name'], [])
        elif kind == 'rule':
            rules.setdefault(body['chain'], []).append(body)
    return chains, rules


def with_devices(api, objects):
    """``objects`` with each netdev base chain's device: nft 1.0.6 leaves it out of the JSON listing, so it is
    read from the text one (only for chains whose names are names: a listing command is text too)."""
    for obj in objects or []:
        chain = obj.get('chain')
        if chain and chain.get('hook') in ('ingress', 'egress') and 'dev' not in chain and \
                all(names.valid('nft_name', chain[k]) for k in ('table', 'name')) and chain['family'] in FAMILIES:
            found = _DEVICES.search(api.text('chain %s %s %s' % (chain['family'], chain['table'], chain['name'])))
            if found:
                devices = [d.strip().strip('"') for d in (found.group(1) or found.group(2)).split(',')]
                chain['dev'] = devices[0] if len(devices) == 1 else devices
    return objects


def _add_rule(rule):
    return {'add': {'rule': dict((k, v) for k, v in rule.items() if k != 'handle')}}


class Engine:
    """Plans and applies one Request against one table (see the module docstring)."""

    def __init__(self, api, request, scratch):
        self.api = api
        self.request = request
        self._scratch = scratch
        self.before = None

    def _trial(self, scratch, rule_lines):
        """The table's skeleton and the wanted chains (JSON), then the wanted rules (text), in a clean
        scratch namespace: (rc, nft's message)."""
        scratch.checked('flush ruleset')
        skeleton = _as_input(self.before, skeleton=True)
        skeleton['nftables'] += [self.request.table_command()] + [
            c.command(self.request.family, self.request.table) for c in self.request.chains]
        rc, dummy, err = scratch.run(json.dumps(skeleton))
        if rc != 0:
            return rc, 'nft refused the table or chains: %s' % message(err)
        if not rule_lines:
            return 0, ''
        rc, dummy, err = scratch.run('\n'.join(line for line, dummy in rule_lines) + '\n')
        return rc, message(err) if rc else ''

    def normalized(self):
        """Wanted rules as the kernel gives them back (JSON rule objects), by chain."""
        rule_lines = self.request.rule_lines()
        with self._scratch(self._devices()) as scratch:
            rc, why = self._trial(scratch, rule_lines)
            if rc != 0:
                raise NftError(self._explain(scratch, rule_lines, why))
            dummy, rules = by_chain(scratch.objects('table ' + self.request.ref))
        return rules

    def _devices(self):
        """Devices the scratch namespace needs: those of the wanted chains and of the table's netdev chains."""
        found = set(self.request.devices())
        for obj in self.before or []:
            dev = obj.get('chain', {}).get('dev')
            found.update([dev] if isinstance(dev, str) else dev or [])
        return sorted(d for d in found if names.valid('ifname', d))

    def _explain(self, scratch, rule_lines, why):
        """Name the first refused rule: nft's error positions are unreliable in a long buffer, so bisect."""
        rc, single = self._trial(scratch, [])
        if rc != 0:
            return '%s (nothing was applied)' % single
        low, high = 0, len(rule_lines)
        while high - low > 1:
            middle = (low + high) // 2
            if self._trial(scratch, rule_lines[:middle])[0] == 0:
                low = middle
            else:
                high = middle
        rc, single = self._trial(scratch, rule_lines[:high])
        return '%s: nft refused it: %s (nothing was applied)' % (rule_lines[high - 1][1], single or why)

    def plan(self, before):
        """Return (JSON commands of one transaction, changes). ``before``: the table's objects, or None."""
        self.before = before
        request = self.request
        if request.delete_table:
            return ([request.table_command('delete')], ['delete table %s' % request.ref]) if before is not None \
                else ([], [])
        chains, current = by_chain(before)
        if request.state == 'present':
            for chain in request.chains:
                why = chain.base_differs(chains[chain.name]) if chain.name in chains else None
                if why:
                    raise NftError(why)
        wanted = self.normalized() if request.rule_lines() else {}
        commands, changes = [], []
        if before is None and request.state == 'present':
            commands.append(request.table_command())
            changes.append('create table %s' % request.ref)
        for chain in request.chains:
            existing = chains.get(chain.name)
            have = current.get(chain.name, [])
            want = wanted.get(chain.name, [])
            if request.state == 'absent':
                if chain.rules is None:
                    if existing:
                        commands.append({'delete': {'chain': request.chain_ref(chain.name)}})
                        changes.append('delete chain %s' % chain.name)
                    continue
                keys = set(rule_key(r) for r in want)
                doomed = [r for r in have if rule_key(r) in keys]
                commands += [{'delete': {'rule': {'family': request.family, 'table': request.table,
                                                  'chain': chain.name, 'handle': r['handle']}}} for r in doomed]
                if doomed:
                    changes.append('%s: %d rules removed' % (chain.name, len(doomed)))
                continue
            if existing:
                if chain.policy and existing.get('policy') != chain.policy:
                    commands.append(chain.command(request.family, request.table))
                    changes.append('policy of %s: %s -> %s' % (chain.name, existing.get('policy'), chain.policy))
            else:
                commands.append(chain.command(request.family, request.table))
                changes.append('create chain %s' % chain.name)
            have_keys = [rule_key(r) for r in have]
            if request.exclusive:
                if have_keys != [rule_key(r) for r in want]:
                    commands.append({'flush': {'chain': request.chain_ref(chain.name)}})
                    commands += [_add_rule(r) for r in want]
                    changes.append('%s: rules replaced (%d before, %d now)' % (chain.name, len(have), len(want)))
            else:
                seen, added = set(have_keys), 0
                for rule in want:
                    if rule_key(rule) not in seen:
                        seen.add(rule_key(rule))
                        commands.append(_add_rule(rule))
                        added += 1
                if added:
                    changes.append('%s: %d rules added' % (chain.name, added))
        return commands, changes

    def apply(self, commands):
        rc, dummy, err = self.api.run(json.dumps({'nftables': commands}))
        if rc != 0:
            raise NftError('nft refused the change, which was tried first in a scratch namespace (the ruleset '
                           'changed meanwhile?): %s (nothing was applied)' % message(err))


def base_chains(objects):
    """(family, table, chain) -> identity, hook and priority of every base chain in ``list ruleset`` objects.

    The identity is the pair of table and chain handles: a re-created table starts
    its chain handles again at 1, but gets a new table handle.
    """
    tables = dict(((t['family'], t['name']), t['handle']) for t in (o['table'] for o in objects if 'table' in o))
    chains = {}
    for chain in (o['chain'] for o in objects if 'chain' in o):
        if chain.get('hook'):
            chains[(chain['family'], chain['table'], chain['name'])] = {
                'identity': (tables[(chain['family'], chain['table'])], chain['handle']),
                'hook': chain['hook'],
                'priority': chain.get('prio', 0),
            }
    return chains


def flushes_ruleset(text):
    return any(line.split('#', 1)[0].strip().rstrip(';').strip() == 'flush ruleset' for line in text.splitlines())


def comparable(objects):
    out = []
    for obj in objects or []:
        kind, body = next(iter(obj.items()))
        body = dict((k, v) for k, v in body.items() if k != 'handle')
        if kind == 'counter':  # a named counter
            body.update(packets=0, bytes=0)
        out.append({kind: _zero_counters(body)})
    return json.dumps(out, sort_keys=True)


def predict_file(api, scratch, ruleset):
    """Load a Ruleset in a scratch namespace on top of a copy of the ruleset: (current objects, the objects
    it would give, or None when the current ruleset cannot be copied)."""
    current = api.objects('ruleset') or []
    with scratch() as scratch_api:
        if not flushes_ruleset(ruleset.content):
            rc, dummy, err = scratch_api.run(json.dumps(_as_input(current)))
            if rc != 0:
                return current, None  # e.g. iptables-nft's xt expressions cannot be fed back
        rc, dummy, err = scratch_api.run(ruleset.content)
        if rc != 0:
            raise NftError('nft refused %s: %s (nothing was applied)' % (ruleset.what, message(err, ruleset.redact)))
        return current, scratch_api.objects('ruleset') or []


def same_ruleset(current, predicted):
    return predicted is not None and comparable(current) == comparable(predicted)


class Ruleset:
    """A whole ruleset to load: its text, what messages call it, and whether they may quote it (not a file's)."""

    def __init__(self, params):
        if params['ruleset'] is not None:
            self.content, self.what, self.redact = params['ruleset'], 'the given ruleset', False
            if len(self.content) > RULESET_MAX:
                raise NftError('the given ruleset is %d characters; at most %d' % (len(self.content), RULESET_MAX))
        else:
            self.what, self.redact = 'ruleset_file %s' % params['ruleset_file'], True
            self.content = files.read_text(params['ruleset_file'], RULESET_MAX, self.what)
        lines = includes(self.content)
        if lines:
            where = '' if self.redact else ' (line %s)' % ', '.join(str(n) for n in lines[:10])
            raise NftError('%s has include statements%s: a ruleset may not read other files; put their rules in it '
                           '(nothing was applied)' % (self.what, where))


def _load(api, scratch, ruleset, reload, check_mode, diff):
    current, predicted = predict_file(api, scratch, ruleset)
    changed = reload or not same_ruleset(current, predicted)
    result = dict(changed=changed, changes=['load %s' % ruleset.what] if changed else [], reregistered_hooks=[])
    before_text = api.text('ruleset') if diff else ''
    if changed and not check_mode:
        handles = base_chains(current)
        rc, dummy, err = api.run(ruleset.content)
        if rc != 0:
            raise NftError('nft refused %s, which loaded in a scratch namespace (the ruleset changed meanwhile?): '
                           '%s (nothing was applied)' % (ruleset.what, message(err, ruleset.redact)))
        after = base_chains(api.objects('ruleset') or [])
        result['reregistered_hooks'] = sorted('%s %s %s %s' % (key + (after[key]['hook'],)) for key in after
                                              if handles.get(key, {}).get('identity') != after[key]['identity'])
    if diff:
        result['diff'] = dict(before=before_text, after=api.text('ruleset') if changed and not check_mode
                              else before_text)
    return result


def _manage_table(api, scratch, request, check_mode, diff):
    engine = Engine(api, request, scratch)
    before = with_devices(api, api.objects('table ' + request.ref))
    before_text = api.text('table ' + request.ref) if before is not None and diff else ''
    commands, changes = engine.plan(before)
    if commands and not check_mode:
        engine.apply(commands)
    result = dict(changed=bool(commands), changes=changes)
    if diff:
        after_text = before_text
        if commands and not check_mode:
            after_text = '' if request.delete_table else api.text('table ' + request.ref)
        result['diff'] = dict(before=before_text, after=after_text)
    return result


def validate(params):
    """Check ``params`` (ARGUMENT_SPEC) as far as can be done without a target: names, rules, a ruleset's
    text. Returns the Request, or the Ruleset to load."""
    if params['ruleset_file'] or params['ruleset'] is not None:
        return Ruleset(params)
    return Request(params['family'], params['table'], params['chains'], params['state'], params['exclusive'])


def manage(module, params, check_mode=False, diff=False):
    """Bring one table, or the whole ruleset, of one namespace to ``params`` (ARGUMENT_SPEC); the module's result."""
    checked = validate(params)
    netns.check_target(params['netns'], params['host'])
    api = open_api(module, params['netns'], params['api'])
    try:
        scratch = scratch_opener(module, params['api'])
        if isinstance(checked, Ruleset):
            result = _load(api, scratch, checked, params['reload'], check_mode, diff)
        else:
            result = _manage_table(api, scratch, checked, check_mode, diff)
    finally:
        api.close()
    result['api'] = api.name
    return result
