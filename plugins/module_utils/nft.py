# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables engine over the libnftables JSON API.

Two ways to reach libnftables, one interface: the Python binding when it is
importable, else the ``nft -j`` command (same JSON either way). Wanted rules,
given as nft rule text, are first added in a scratch network namespace, which
validates them and yields the JSON the kernel gives back; rules are compared in
that form. Every change of one call is one nft transaction (one buffer).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import re

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.pflab.netfilter.plugins.module_utils import netns

try:
    import nftables as nftables_binding
except ImportError:
    nftables_binding = None

FAMILIES = ('ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev')
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]{0,254}$')
_RULE_KEYS_IGNORED = frozenset(['handle', 'family', 'table', 'chain', 'index'])
_BASE_KEYS = ('type', 'hook', 'prio', 'dev')


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


class NftError(Exception):
    pass


class _Api:
    """Reaches libnftables in one namespace: command buffers in, listings out (JSON or text)."""

    name = None

    def run(self, buffer):
        """Run a buffer of nft commands (text or JSON) as one transaction: (rc, out, err)."""
        raise NotImplementedError

    def list(self, what, json_output=True, stateless=False):
        """(rc, out, err) of ``list <what>``."""
        raise NotImplementedError

    def checked(self, buffer):
        rc, dummy, err = self.run(buffer)
        if rc != 0:
            raise NftError(err.strip() or 'nft failed')

    def objects(self, what):
        """Objects of ``list <what>`` (metainfo dropped), or None when it does not exist."""
        rc, out, err = self.list(what)
        if rc != 0:
            if 'No such file or directory' in err:
                return None
            raise NftError('list %s: %s' % (what, err.strip()))
        return json.loads(out)['nftables'][1:]

    def text(self, what):
        rc, out, err = self.list(what, json_output=False, stateless=True)
        if rc != 0:
            raise NftError('list %s: %s' % (what, err.strip()))
        return out


class CliApi(_Api):
    name = 'nft -j'

    def __init__(self, runner, nft_path):
        self.runner = runner
        self.nft = nft_path

    def _run(self, argv, data=None):
        rc, out, err = self.runner.run([self.nft] + argv, data=data)
        return rc, to_text(out), to_text(err)

    def run(self, buffer):
        # With -j, nft 1.0 reads JSON only, and ignores a text buffer without an error.
        json_input = buffer.lstrip().startswith('{')
        return self._run((['-j'] if json_input else []) + ['-f', '-'], data=to_bytes(buffer))

    def list(self, what, json_output=True, stateless=False):
        return self._run((['-j'] if json_output else []) + (['-s'] if stateless else []) + ['list'] + what.split())


class BindingApi(_Api):
    name = 'libnftables binding'

    def __init__(self, netns_name=None):
        # The netlink socket belongs to the namespace the context is made in.
        if netns_name:
            with netns.entered(netns_name):
                self.ctx = nftables_binding.Nftables()
        else:
            self.ctx = nftables_binding.Nftables()

    def _cmd(self, buffer, json_output=True, stateless=False):
        self.ctx.set_json_output(json_output)
        self.ctx.set_stateless_output(stateless)
        return self.ctx.cmd(buffer)

    def run(self, buffer):
        return self._cmd(buffer)

    def list(self, what, json_output=True, stateless=False):
        return self._cmd('list ' + what, json_output, stateless)


def open_api(module, netns_name=None, prefer='auto'):
    """The binding when importable (unless ``prefer`` is ``cli``), else ``nft -j``."""
    if prefer != 'cli' and nftables_binding is not None:
        return BindingApi(netns_name)
    if prefer == 'binding':
        raise NftError('the nftables Python binding is not importable on the target')
    nft = module.get_bin_path('nft')
    if not nft:
        raise NftError('neither the nftables Python binding nor the nft command is on the target')
    return CliApi(netns.Runner(module, netns_name), nft)


def scratch_opener(module, prefer='auto'):
    """A context manager factory: an api on a fresh scratch namespace, removed afterwards."""
    @contextlib.contextmanager
    def opener():
        with netns.scratch(module.run_command) as name:
            yield open_api(module, name, prefer)
    return opener


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


class Chain:
    """One chain as asked for."""

    def __init__(self, spec, family):
        self.name = spec['name']
        if not _NAME.match(self.name or ''):
            raise NftError('chain name %r is invalid' % self.name)
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
        if family == 'netdev' and self.hook and not self.device:
            raise NftError('chain %s: a netdev base chain needs a device' % self.name)
        for rule in self.rules or []:
            if '\n' in rule or ';' in rule:
                raise NftError('chain %s rule %r: one rule per entry, without newlines or ";"' % (self.name, rule))

    def declaration(self, family, table):
        if not self.hook:
            return 'add chain %s %s %s' % (family, table, self.name)
        device = ' device "%s"' % self.device if self.device else ''
        policy = ' policy %s;' % self.policy if self.policy else ''
        return 'add chain %s %s %s { type %s hook %s%s priority %d;%s }' % (
            family, table, self.name, self.type, self.hook, device, self.priority, policy)

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
            raise NftError('unknown family %r' % family)
        if not _NAME.match(table or ''):
            raise NftError('table name %r is invalid' % table)
        self.family, self.table, self.state, self.exclusive = family, table, state, exclusive
        self.chains = [Chain(spec, family) for spec in chains or []]
        names = [c.name for c in self.chains]
        if len(set(names)) != len(names):
            raise NftError('a chain is given twice in %s' % names)
        self.delete_table = state == 'absent' and chains is None

    @property
    def ref(self):
        return '%s %s' % (self.family, self.table)

    def rule_lines(self):
        """(command, where) for every wanted rule, in order."""
        lines = []
        for chain in self.chains:
            for number, rule in enumerate(chain.rules or [], 1):
                lines.append(('add rule %s %s %s' % (self.ref, chain.name, rule),
                              'chain %s rule %d (%s)' % (chain.name, number, rule)))
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


def _by_chain(objects):
    chains, rules = {}, {}
    for obj in objects or []:
        if 'chain' in obj:
            chains[obj['chain']['name']] = obj['chain']
            rules.setdefault(obj['chain']['name'], [])
        elif 'rule' in obj:
            rules.setdefault(obj['rule']['chain'], []).append(obj['rule'])
    return chains, rules


class Engine:
    """Plans and applies one Request against one table.

    The wanted rules are normalized in a scratch namespace when the chains already
    hold rules to compare with. When they hold none, the rules go straight into
    the one transaction, and only if nft refuses it is the scratch namespace used,
    to name the rule.
    """

    def __init__(self, api, request, scratch):
        self.api = api
        self.request = request
        self._scratch = scratch
        self.before = None
        self.unchecked = False  # True when the planned text was not tried in a scratch namespace

    def _trial(self, scratch, skeleton, rule_lines):
        scratch.checked('flush ruleset')
        scratch.checked(json.dumps(skeleton))
        lines = ['add table %s' % self.request.ref]
        lines += [c.declaration(self.request.family, self.request.table) for c in self.request.chains]
        lines += [line for line, dummy in rule_lines]
        rc, dummy, err = scratch.run('\n'.join(lines) + '\n')
        return rc, err.strip()

    def normalized(self):
        """Wanted rules as the kernel gives them back (JSON rule objects), by chain."""
        rule_lines = self.request.rule_lines()
        skeleton = _as_input(self.before, skeleton=True)
        with self._scratch() as scratch:
            rc, message = self._trial(scratch, skeleton, rule_lines)
            if rc != 0:
                raise NftError(self._explain(scratch, skeleton, rule_lines, message))
            dummy, rules = _by_chain(scratch.objects('table ' + self.request.ref))
        return rules

    def _explain(self, scratch, skeleton, rule_lines, message):
        """Name the first refused rule: nft's error positions are unreliable in a long buffer, so bisect."""
        low, high = 0, len(rule_lines)
        if self._trial(scratch, skeleton, [])[0] != 0:
            return 'nft refused the table or chains: %s' % message
        while high - low > 1:
            middle = (low + high) // 2
            if self._trial(scratch, skeleton, rule_lines[:middle])[0] == 0:
                low = middle
            else:
                high = middle
        rc, single = self._trial(scratch, skeleton, rule_lines[:high])
        return '%s: nft refused it: %s' % (rule_lines[high - 1][1], single or message)

    def plan(self, before, check_mode=False):
        """Return (transaction text, changes). ``before``: the table's objects, or None."""
        self.before = before
        ref, family, table = self.request.ref, self.request.family, self.request.table
        if self.request.delete_table:
            return ('delete table %s\n' % ref, ['delete table %s' % ref]) if before is not None else ('', [])
        chains, current = _by_chain(before)
        if self.request.state == 'present':
            for chain in self.request.chains:
                why = chain.base_differs(chains[chain.name]) if chain.name in chains else None
                if why:
                    raise NftError(why)
        self.unchecked = not check_mode and self.request.state == 'present' and \
            not any(current.get(c.name) for c in self.request.chains)
        wanted = {} if self.unchecked else self.normalized()
        lines, changes = [], []
        if before is None and self.request.state == 'present':
            lines.append('add table %s' % ref)
            changes.append('create table %s' % ref)
        for chain in self.request.chains:
            existing = chains.get(chain.name)
            have = current.get(chain.name, [])
            want = wanted.get(chain.name, [])
            if self.request.state == 'absent':
                if chain.rules is None:
                    if existing:
                        lines.append('delete chain %s %s' % (ref, chain.name))
                        changes.append('delete chain %s' % chain.name)
                    continue
                keys = set(rule_key(r) for r in want)
                doomed = [r for r in have if rule_key(r) in keys]
                lines += ['delete rule %s %s handle %d' % (ref, chain.name, r['handle']) for r in doomed]
                if doomed:
                    changes.append('%s: %d rules removed' % (chain.name, len(doomed)))
                continue
            if existing:
                if chain.policy and existing.get('policy') != chain.policy:
                    lines.append(chain.declaration(family, table))
                    changes.append('policy of %s: %s -> %s' % (chain.name, existing.get('policy'), chain.policy))
            else:
                lines.append(chain.declaration(family, table))
                changes.append('create chain %s' % chain.name)
            have_keys = [rule_key(r) for r in have]
            want_keys = list(chain.rules or []) if self.unchecked else [rule_key(r) for r in want]
            texts = chain.rules or []
            if self.request.exclusive:
                if have_keys != want_keys:
                    lines.append('flush chain %s %s' % (ref, chain.name))
                    lines += ['add rule %s %s %s' % (ref, chain.name, text) for text in texts]
                    changes.append('%s: rules replaced (%d before, %d now)' % (chain.name, len(have), len(texts)))
            else:
                seen, added = set(have_keys), 0
                for key, text in zip(want_keys, texts):
                    if key not in seen:
                        seen.add(key)
                        lines.append('add rule %s %s %s' % (ref, chain.name, text))
                        added += 1
                if added:
                    changes.append('%s: %d rules added' % (chain.name, added))
        return ('\n'.join(lines) + '\n' if lines else ''), changes

    def apply(self, text):
        rc, dummy, err = self.api.run(text)
        if rc != 0 and self.unchecked:
            with self._scratch() as scratch:
                raise NftError(self._explain(scratch, _as_input(self.before, skeleton=True), self.request.rule_lines(), err.strip()))
        if rc != 0:
            raise NftError('nft refused the change, which was tried first in a scratch namespace '
                           '(the ruleset changed meanwhile?): %s' % err.strip())


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


def _comparable(objects):
    out = []
    for obj in objects or []:
        kind, body = next(iter(obj.items()))
        body = dict((k, v) for k, v in body.items() if k != 'handle')
        if kind == 'counter':  # a named counter
            body.update(packets=0, bytes=0)
        out.append({kind: _zero_counters(body)})
    return json.dumps(out, sort_keys=True)


def predict_file(api, scratch, content):
    """Load ``content`` in a scratch namespace on top of a copy of the ruleset; None when it cannot be copied."""
    current = api.objects('ruleset') or []
    with scratch() as scratch_api:
        if not flushes_ruleset(content):
            rc, dummy, err = scratch_api.run(json.dumps(_as_input(current)))
            if rc != 0:
                return current, None  # e.g. iptables-nft's xt expressions cannot be fed back
        rc, dummy, err = scratch_api.run(content)
        if rc != 0:
            raise NftError('the ruleset file is refused: %s' % err.strip())
        return current, scratch_api.objects('ruleset') or []


def same_ruleset(current, predicted):
    return predicted is not None and _comparable(current) == _comparable(predicted)


def _read_ruleset(params):
    if params['ruleset'] is not None:
        return params['ruleset'], 'the given ruleset'
    try:
        with open(params['ruleset_file'], 'rb') as f:
            return to_text(f.read()), params['ruleset_file']
    except (IOError, OSError) as e:
        raise NftError('cannot read %s: %s' % (params['ruleset_file'], e))


def _load(api, scratch, params, check_mode, diff):
    content, what = _read_ruleset(params)
    current, predicted = predict_file(api, scratch, content)
    changed = params['reload'] or not same_ruleset(current, predicted)
    result = dict(changed=changed, changes=['load %s' % what] if changed else [], reregistered_hooks=[])
    before_text = api.text('ruleset') if diff else ''
    if changed and not check_mode:
        handles = base_chains(api.objects('ruleset') or [])
        rc, dummy, err = api.run(content)
        if rc != 0:
            raise NftError('nft refused %s: %s' % (what, err.strip()))
        after = base_chains(api.objects('ruleset') or [])
        result['reregistered_hooks'] = sorted('%s %s %s %s' % (key + (after[key]['hook'],)) for key in after
                                              if handles.get(key, {}).get('identity') != after[key]['identity'])
    if diff:
        result['diff'] = dict(before=before_text, after=api.text('ruleset') if not check_mode else before_text)
    return result


def _manage_table(api, scratch, params, check_mode, diff):
    request = Request(params['family'], params['table'], params['chains'], params['state'], params['exclusive'])
    engine = Engine(api, request, scratch)
    before = api.objects('table ' + request.ref)
    before_text = api.text('table ' + request.ref) if before is not None and diff else ''
    text, changes = engine.plan(before, check_mode)
    if text and not check_mode:
        engine.apply(text)
    result = dict(changed=bool(text), changes=changes)
    if diff:
        after_text = before_text
        if text and not check_mode and not request.delete_table:
            after_text = api.text('table ' + request.ref)
        elif text and not check_mode:
            after_text = ''
        result['diff'] = dict(before=before_text, after=after_text)
    return result


def manage(module, params, check_mode=False, diff=False):
    """Bring one table, or the whole ruleset, of one namespace to ``params`` (ARGUMENT_SPEC); the module's result."""
    netns.check_target(params['netns'], params['host'])
    api = open_api(module, params['netns'], params['api'])
    scratch = scratch_opener(module, params['api'])
    if params['ruleset_file'] or params['ruleset'] is not None:
        result = _load(api, scratch, params, check_mode, diff)
    else:
        result = _manage_table(api, scratch, params, check_mode, diff)
    result['api'] = api.name
    return result
