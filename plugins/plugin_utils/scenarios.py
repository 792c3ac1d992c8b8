# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario files on the controller: reading, checking against the JSON Schema, matrix variants.

A scenario file may come from someone else. It is read only when it is a regular
file of at most MAX_BYTES, its YAML may not expand (through aliases) into more than
MAX_NODES nodes (a few KB of nested aliases would otherwise keep the controller busy
for minutes), and errors quote none of its values at length.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import functools
import json
import os
import re
import traceback

import yaml

from ansible_collections.pflab.netfilter.plugins.module_utils import files
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip, shown
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import KINDS

try:
    import jsonschema
except ImportError:
    jsonschema = None
    JSONSCHEMA_IMPORT_ERROR = traceback.format_exc()
else:
    JSONSCHEMA_IMPORT_ERROR = None

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), '..', '..', 'schemas', 'scenario.schema.json')
VARIANT_KEYS = frozenset(['id', 'title', 'label', 'expect', 'notes', 'reverse'] +
                         [key for kind in KINDS.values() for key in kind.variant_keys])
_MAX_ERRORS = 10
MAX_BYTES = 1 << 20
MAX_NODES = 100000


class ScenarioFileError(PflabError):
    pass


def _ecma_pattern(validator, pattern, instance, schema):
    """JSON Schema patterns are ECMA-262 regexes, whose '$' matches only at the end of the text; Python's
    also matches before a final newline, which would let "name\n" pass '^[a-z]+$'."""
    if validator.is_type(instance, 'string') and not _compiled(pattern).search(instance):
        yield jsonschema.ValidationError('%s does not match %s' % (shown(instance), pattern))


@functools.lru_cache(maxsize=None)
def _compiled(pattern):
    return re.compile(re.sub(r'(?<!\\)\$', r'\\Z', pattern))


@functools.lru_cache(maxsize=1)
def _validator():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {'pattern': _ecma_pattern})
    return cls(schema)


def _field(path):
    out = ''
    for part in path:
        out += '[%d]' % part if isinstance(part, int) else ('.' if out else '') + str(part)
    return out or '(top level)'


def check(data, origin):
    """Raise ScenarioFileError naming ``origin`` and each failing field unless ``data`` fits the schema."""
    if jsonschema is None:
        raise ScenarioFileError('checking %s needs the jsonschema Python library on the controller' % origin)
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = ['%s: %s' % (clip(_field(e.absolute_path), 200), _message(e)) for e in errors[:_MAX_ERRORS]]
        if len(errors) > _MAX_ERRORS:
            lines.append('... and %d more' % (len(errors) - _MAX_ERRORS))
        raise ScenarioFileError('%s is not a valid scenario:\n  %s' % (origin, '\n  '.join(lines)))


def _message(error):
    """jsonschema's message, with the refused value quoted short."""
    text = error.message
    if not isinstance(error.instance, (dict, list)) or len(text) > 200:
        text = text.replace(repr(error.instance), shown(error.instance))
    return clip(text, 300)


def _expanded_nodes(node, limit):
    """How many nodes ``node`` stands for once every alias is expanded, counting up to ``limit``."""
    memo, active = {}, set()

    def size(current):
        key = id(current)
        if key in memo:
            return memo[key]
        if key in active:
            raise ScenarioFileError('an alias refers to itself')
        active.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [item for pair in current.value for item in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        memo[key] = total
        return total

    return size(node) if node is not None else 0


def load(path):
    """The scenario in file ``path``, checked against the schema."""
    try:
        text = files.read_text(path, MAX_BYTES, 'scenario %s' % path)
    except files.FileError as e:
        raise ScenarioFileError('%s' % e)
    try:
        nodes = _expanded_nodes(yaml.compose(text, Loader=yaml.SafeLoader), MAX_NODES)
        if nodes > MAX_NODES:
            raise ScenarioFileError('%s expands to more than %d YAML nodes through its aliases' % (path, MAX_NODES))
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioFileError('%s is not valid YAML: %s' % (path, clip(_yaml_problem(e), 300)))
    except RecursionError:
        raise ScenarioFileError('%s nests deeper than a scenario can' % path)
    check(data, path)
    return data


def _yaml_problem(error):
    """Where and what, without the lines of the file that PyYAML quotes around the mark."""
    mark = getattr(error, 'problem_mark', None)
    problem = getattr(error, 'problem', None) or getattr(error, 'context', None) or 'cannot be parsed'
    return '%s%s' % ('line %d, column %d: ' % (mark.line + 1, mark.column + 1) if mark else '', problem)


def read(args, find, loader=None):
    """The scenario that ``args`` (a scenario task's, or one item of a suite) names: exactly one of ``src`` (a
    file, relative paths resolved by ``find``, read by ``loader``, default ``load``) and ``scenario`` (data),
    checked, with ``variant`` applied (to a copy)."""
    if not isinstance(args, dict):
        raise ScenarioFileError('a scenario is given as src, scenario and variant, got %s' % shown(args))
    if ('src' in args) == ('scenario' in args):
        raise ScenarioFileError('give exactly one of src and scenario')
    if 'src' in args:
        if not isinstance(args['src'], str):
            raise ScenarioFileError('src is a path, got %s' % shown(args['src']))
        path = args['src'] if os.path.isabs(args['src']) else find(args['src'])
        data, origin = (loader or load)(path), path
    else:
        data = args['scenario']
        origin = 'scenario %s' % (shown(data.get('id')) if isinstance(data, dict) else '(not a mapping)')
        check(data, origin)
    if args.get('variant'):
        data = apply_variant(data, args['variant'], origin)
    return data


def apply_variant(scenario, variant, origin):
    """A copy of ``scenario`` changed by ``variant`` (see the scenario module's variant option)."""
    if not isinstance(variant, dict):
        raise ScenarioFileError('%s: a variant is a mapping, got %s' % (origin, shown(variant)))
    unknown = sorted(str(k) for k in set(variant) - VARIANT_KEYS)
    if unknown:
        raise ScenarioFileError('%s: unknown variant keys %s (known: %s)' % (origin, shown(unknown), sorted(VARIANT_KEYS)))
    out = copy.deepcopy(scenario)
    if variant.get('reverse'):
        out['steps'].reverse()
    for kind in KINDS.values():
        try:
            out['steps'] = kind.vary(out['steps'], variant)
        except PflabError as e:
            raise ScenarioFileError('%s: %s' % (origin, e))
    for key in ('id', 'title', 'expect', 'notes'):
        if key in variant:
            out[key] = copy.deepcopy(variant[key])
    if variant.get('label'):
        out['title'] = '%s (%s)' % (out['title'], variant['label'])
    out['variant'] = dict((k, v) for k, v in variant.items() if k not in ('id', 'title', 'label', 'expect', 'notes'))
    out['variant']['of'] = scenario['id']
    check(out, '%s with variant %s' % (origin, shown(out['id'])))
    return out


def matrix_runs(variants, scenario_dir):
    """One {src, variant} per row of a matrix (see playbooks/scenarios/matrix.yml), variant by variant."""
    runs = []
    for variant in variants:
        for row in variant['expect']:
            change = dict(variant.get('change') or {})
            change.update(id='%s-%s' % (row['scenario'], variant['id']), label=variant['label'],
                          expect=dict(reached=row['reached'], trace=list(row['trace'])))
            if variant.get('notes'):
                change['notes'] = variant['notes']
            runs.append(dict(src=os.path.join(scenario_dir, row['scenario'] + '.yml'), variant=change))
    return runs
