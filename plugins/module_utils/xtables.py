# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables rules engine: legacy and nft backends behind one interface.

Rules are compared in the form the kernel gives back (``*-save`` output), never
with ``-C``. Wanted rules are first restored into a scratch network namespace,
which both validates them and yields their normalized form; the real ruleset is
then changed in one ``*-restore --noflush`` transaction, or not at all.

``*-save`` without ``-t`` dumps only tables that exist (legacy reads
/proc/net/ip_tables_names), so reading never creates a table or registers its
hooks. Only a write creates a table.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.pflab.netfilter.plugins.module_utils import names, netns, proc
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, shown

BUILTIN_CHAINS = {
    'filter': ('INPUT', 'FORWARD', 'OUTPUT'),
    'nat': ('PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'),
    'mangle': ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'),
    'raw': ('PREROUTING', 'OUTPUT'),
    'security': ('INPUT', 'FORWARD', 'OUTPUT'),
}
LOG_PREFIX_MAX = 29
RULE_MAX = 4096  # characters; iptables-restore reads lines into a buffer of 10 KiB
# Characters that cannot pass through iptables-restore's line format, or that
# only a shell would give meaning to.
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f"\'\\`$;|&<>]')
_COMMAND_OPTIONS = frozenset([
    '-A', '--append', '-I', '--insert', '-D', '--delete', '-R', '--replace', '-N', '--new-chain',
    '-X', '--delete-chain', '-F', '--flush', '-P', '--policy', '-E', '--rename-chain', '-t', '--table',
    '-Z', '--zero', '-L', '--list', '-S', '--list-rules',
    '-M', '--modprobe',  # names a program for iptables to run
])
_ERROR_LINE = re.compile(r'(?:Error occurred at line: |line )(\d+)')


ARGUMENT_SPEC = dict(
    backend=dict(type='str', default='auto', choices=['auto', 'legacy', 'nft']),
    ip_version=dict(type='int', default=4, choices=[4, 6]),
    table=dict(type='str', default='filter', choices=sorted(BUILTIN_CHAINS)),
    netns=dict(type='str'),
    host=dict(type='bool', default=False),
    chains=dict(type='list', elements='dict', required=True, options=dict(
        name=dict(type='str', required=True),
        policy=dict(type='str', choices=['ACCEPT', 'DROP']),
        rules=dict(type='list', elements='str'),
    )),
    state=dict(type='str', default='present', choices=['present', 'absent']),
    exclusive=dict(type='bool', default=False),
)


class XtablesError(PflabError):
    pass


def _stem(ip_version):
    return 'iptables' if ip_version == 4 else 'ip6tables'


class Backend:
    """One iptables variant: which save/restore pair speaks to which kernel part."""

    def __init__(self, name, ip_version, runner, get_bin_path):
        self.name = name
        self.ip_version = ip_version
        self.runner = runner
        stem = _stem(ip_version)
        self.save_cmd = self._need(get_bin_path, '%s-%s-save' % (stem, name))
        self.restore_cmd = self._need(get_bin_path, '%s-%s-restore' % (stem, name))

    @staticmethod
    def _need(get_bin_path, binary):
        path = get_bin_path(binary)
        if not path:
            raise XtablesError('%s is not installed on the target' % binary)
        return path

    def save(self, runner=None):
        rc, out, err = (runner or self.runner).run([self.save_cmd])
        if rc != 0:
            raise XtablesError('%s failed: %s' % (self.save_cmd, to_text(err).strip()))
        return parse_save(to_text(out))

    def restore(self, text, noflush=True, runner=None):
        """Return (rc, message). ``-w`` waits for the xtables lock."""
        argv = [self.restore_cmd, '-w', '5'] + (['--noflush'] if noflush else [])
        rc, out, err = (runner or self.runner).run(argv, data=to_bytes(text))
        return rc, (to_text(err) or to_text(out)).strip()

    def describe(self):
        return {'name': self.name, 'save': self.save_cmd, 'restore': self.restore_cmd}


def resolve_backend(name, ip_version, runner, get_bin_path):
    """``auto`` means whatever ``iptables`` (``ip6tables``) is on the target."""
    if name == 'auto':
        stem = _stem(ip_version)
        path = get_bin_path(stem)
        if not path:
            raise XtablesError('backend auto: %s is not installed on the target' % stem)
        rc, out, err = proc.run([path, '--version'])
        version = to_text(out).strip()
        if '(legacy)' in version:
            name = 'legacy'
        elif '(nf_tables)' in version:
            name = 'nft'
        else:
            raise XtablesError('backend auto: cannot tell the variant of %s from %s' % (path, shown(version)))
    return Backend(name, ip_version, runner, get_bin_path)


class Table:
    """One table of ``*-save`` output: chain policies and rules, counters left out."""

    def __init__(self, name):
        self.name = name
        self.policies = {}  # chain -> policy, '-' for a user chain; dict order is save order
        self.rules = {}  # chain -> [rule text without '-A CHAIN ']

    def copy(self):
        other = Table(self.name)
        other.policies = dict(self.policies)
        other.rules = dict((chain, list(rules)) for chain, rules in self.rules.items())
        return other

    def add_chain(self, chain, policy='-'):
        self.policies.setdefault(chain, policy)
        self.rules.setdefault(chain, [])

    def text(self):
        """The table as ``*-save`` prints it, without counters."""
        lines = ['*' + self.name]
        lines += [':%s %s' % (chain, policy) for chain, policy in self.policies.items()]
        for chain in self.policies:
            lines += ['-A %s %s' % (chain, rule) for rule in self.rules[chain]]
        lines.append('COMMIT')
        return '\n'.join(lines) + '\n'

    def __eq__(self, other):
        return isinstance(other, Table) and self.text() == other.text()


def parse_save(text):
    """``*-save`` output -> {table name: Table}."""
    tables, table = {}, None
    for line in text.splitlines():
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            table = tables[line[1:]] = Table(line[1:])
        elif line == 'COMMIT':
            table = None
        elif table is None:
            raise XtablesError('unexpected line outside a table in save output: %r' % line)
        elif line.startswith(':'):
            chain, policy = line[1:].split()[:2]
            table.add_chain(chain, policy)
        elif line.startswith('-A '):
            chain, dummy, rule = line[3:].partition(' ')
            table.add_chain(chain)
            table.rules[chain].append(rule)
    return tables


def parse_rule(text):
    """Split one rule given in iptables argument syntax; refuse what restore cannot take."""
    if len(text) > RULE_MAX:
        raise XtablesError('the rule is %d characters; at most %d' % (len(text), RULE_MAX))
    tokens = split_words(text)
    if not tokens:
        raise XtablesError('the rule is empty')
    for index, token in enumerate(tokens):
        if token in _COMMAND_OPTIONS:
            raise XtablesError('%s does not belong in a rule (the chain comes from chains[].name; no option may '
                               'give another command or a program to run)' % token)
        bad = _FORBIDDEN.search(token)
        if bad:
            raise XtablesError('character %r is not allowed in a rule (no shell ever sees it, but '
                               'iptables-restore lines cannot carry it safely)' % bad.group(0))
        if token == '--log-prefix' and index + 1 < len(tokens) and len(tokens[index + 1]) > LOG_PREFIX_MAX:
            raise XtablesError('--log-prefix %s is %d characters; the kernel keeps at most %d'
                               % (shown(tokens[index + 1]), len(tokens[index + 1]), LOG_PREFIX_MAX))
    return tokens


def split_words(text):
    """Split like a shell. shlex costs ~30 us a rule, so unquoted rules take str.split."""
    if '"' not in text and "'" not in text:
        return text.split()
    try:
        return shlex.split(text)
    except ValueError as e:
        raise XtablesError('cannot split the rule: %s' % e)


def _restore_arg(token):
    return '"%s"' % token if not token or ' ' in token else token


def rule_args(tokens):
    return ' '.join(_restore_arg(t) for t in tokens)


def rule_line(chain, tokens):
    return '-A %s %s' % (chain, rule_args(tokens))


class Request:
    """What one module call asks for, validated."""

    def __init__(self, table, chains, state, exclusive):
        if table not in BUILTIN_CHAINS:
            raise XtablesError('unknown table %s; one of %s' % (shown(table), ', '.join(sorted(BUILTIN_CHAINS))))
        self.table = table
        self.state = state
        self.exclusive = exclusive
        self.chains = []
        seen = set()
        for spec in chains:
            name = names.check('xt_chain', spec['name'], 'chain name')
            if name in seen:
                raise XtablesError('chain %s is given twice' % name)
            seen.add(name)
            if spec.get('policy') and not self.builtin(name):
                raise XtablesError('chain %s: only built-in chains have a policy' % name)
            rules = spec.get('rules')
            tokens = []
            for number, text in enumerate(rules or [], 1):
                try:
                    tokens.append(parse_rule(text))
                except XtablesError as e:
                    raise XtablesError('chain %s rule %d (%s): %s' % (name, number, shown(text), e))
            self.chains.append({'name': name, 'policy': spec.get('policy'), 'rules': rules, 'tokens': tokens})

    def builtin(self, chain):
        return chain in BUILTIN_CHAINS[self.table]


class Engine:
    """Plans and applies one Request against one table.

    The wanted rules are normalized in a scratch namespace when the chains already
    hold rules to compare with. When they hold none, there is nothing to compare:
    the rules go straight into the one restore transaction, and only if the tool
    refuses it is the scratch namespace used, to name the rule. That shortcut needs
    the table to exist: iptables-legacy-restore creates a missing table (and
    registers its hooks) even when it then refuses a rule, so rules for a table the
    target does not have yet are always tried in a scratch namespace first.
    """

    def __init__(self, backend, request):
        self.backend = backend
        self.request = request
        self.before = None
        self.unchecked = False  # True when the planned text was not tried in a scratch namespace
        self.rule_lines = []
        for chain in request.chains:
            for number, tokens in enumerate(chain['tokens'], 1):
                where = 'chain %s rule %d (%s)' % (chain['name'], number, shown(chain['rules'][number - 1]))
                self.rule_lines.append((rule_line(chain['name'], tokens), where))

    def _trial(self, rule_lines, runner):
        """Restore the table's chains plus ``rule_lines`` into the scratch namespace: (rc, message)."""
        lines = ['*' + self.request.table]
        lines += [':%s %s' % (chain, 'ACCEPT' if self.request.builtin(chain) else '-') for chain in self._chains()]
        lines += [line for line, dummy in rule_lines]
        lines.append('COMMIT')
        return self.backend.restore('\n'.join(lines) + '\n', noflush=False, runner=runner)

    def _chains(self):
        return list(self.before.policies) + [c['name'] for c in self.request.chains if c['name'] not in self.before.policies]

    def _refused(self, message, runner):
        """The error naming the first rule the tool refuses, bisecting when its message names no rule line."""
        match = _ERROR_LINE.search(message)
        index = int(match.group(1)) - len(self._chains()) - 2 if match else -1
        if 0 <= index < len(self.rule_lines):
            where = self.rule_lines[index][1]
        else:
            low, high = 0, len(self.rule_lines)  # rule_lines[:low] restore; rule_lines[:high] does not
            while high - low > 1:
                middle = (low + high) // 2
                if self._trial(self.rule_lines[:middle], runner)[0] == 0:
                    low = middle
                else:
                    high = middle
            where = self.rule_lines[high - 1][1] if high else None
            message = self._trial(self.rule_lines[:high], runner)[1] or message
        return XtablesError('%s%s refused it: %s (nothing was applied)' % (
            where + ': ' if where else '', self.backend.restore_cmd, message))

    def normalized(self):
        """The wanted rules as the kernel gives them back, by chain."""
        with netns.scratch() as name:
            runner = netns.Runner(name)
            rc, message = self._trial(self.rule_lines, runner)
            if rc != 0:
                raise self._refused(message, runner)
            tried = self.backend.save(runner).get(self.request.table) or Table(self.request.table)
        return dict((c['name'], tried.rules.get(c['name'], [])) for c in self.request.chains)

    def plan(self, before_tables, check_mode=False):
        """Return (after table as planned, restore text, changes); no text when nothing changes."""
        table = self.request.table
        before = self.before = before_tables.get(table)
        table_exists = before is not None
        if not table_exists:  # a table that does not exist yet has its built-in chains, policy ACCEPT
            before = self.before = Table(table)
            for chain in BUILTIN_CHAINS[table]:
                before.add_chain(chain, 'ACCEPT')
        self.unchecked = table_exists and not check_mode and self.request.state == 'present' and \
            not any(before.rules.get(c['name']) for c in self.request.chains)
        if self.unchecked:
            wanted = dict((c['name'], [rule_args(t) for t in c['tokens']]) for c in self.request.chains)
        else:
            wanted = self.normalized()
        after = before.copy()
        lines, changes = [], []
        for chain in self.request.chains:
            name = chain['name']
            exists = name in before.policies
            current = before.rules.get(name, [])
            if self.request.state == 'absent':
                if chain['rules'] is None and not self.request.builtin(name):
                    if exists:
                        del after.policies[name], after.rules[name]
                        lines += ['-F ' + name, '-X ' + name]
                        changes.append('delete chain %s' % name)
                    continue
                doomed = set(wanted[name])
                new = [rule for rule in current if rule not in doomed]
            elif self.request.exclusive:
                new = list(wanted[name])
            else:
                have = set(current)
                new = current + [rule for rule in _unique(wanted[name]) if rule not in have]
            if not exists and self.request.state == 'present':
                after.add_chain(name)
                lines.append(':%s -' % name)
                changes.append('create chain %s' % name)
            policy = chain['policy']
            if policy and after.policies.get(name) != policy:
                changes.append('policy of %s: %s -> %s' % (name, after.policies.get(name), policy))
                after.policies[name] = policy
                lines.append('-P %s %s' % (name, policy))
            if new != current and name in after.policies:
                old, now = set(current), set(new)
                added, removed = len([r for r in new if r not in old]), len([r for r in current if r not in now])
                changes.append('%s: %d rules added, %d removed%s' % (
                    name, added, removed, ', reordered' if not added and not removed else ''))
                after.rules[name] = new
                lines.append('-F ' + name)
                lines += ['-A %s %s' % (name, rule) for rule in new]
        text = '*%s\n%s\nCOMMIT\n' % (table, '\n'.join(lines)) if lines else ''
        return after, text, changes

    def apply(self, text):
        rc, message = self.backend.restore(text)
        if rc == 0:
            return
        if self.unchecked:
            with netns.scratch() as name:
                runner = netns.Runner(name)
                rc, trial_message = self._trial(self.rule_lines, runner)  # line numbers of the trial's layout
                if rc != 0:
                    raise self._refused(trial_message, runner)
        raise XtablesError('%s refused the change, which was tried first in a scratch namespace '
                           '(the ruleset changed meanwhile?): %s (the transaction was not applied)'
                           % (self.backend.restore_cmd, message))


def _unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def validate(params):
    """The Request of ``params`` (ARGUMENT_SPEC), checked without a target."""
    return Request(params['table'], params['chains'], params['state'], params['exclusive'])


def manage(module, params, check_mode=False, diff=False):
    """Bring one table of one namespace to ``params`` (ARGUMENT_SPEC); the module's result."""
    request = validate(params)
    netns.check_target(params['netns'], params['host'])
    runner = netns.Runner(params['netns'])
    backend = resolve_backend(params['backend'], params['ip_version'], runner, module.get_bin_path)
    table = params['table']
    engine = Engine(backend, request)
    before = backend.save().get(table)
    after, text, changes = engine.plan({table: before} if before else {}, check_mode)
    if not text:
        after = before or after
    elif not check_mode:
        engine.apply(text)
        after = backend.save()[table]
    result = dict(
        changed=bool(text),
        backend=backend.describe(),
        changes=changes,
        rules=dict((c['name'], after.rules.get(c['name'], [])) for c in params['chains']),
    )
    if diff:
        result['diff'] = dict(before=before.text() if before else '', after=after.text() if text or before else '')
    return result
