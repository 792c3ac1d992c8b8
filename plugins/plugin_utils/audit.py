# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet audit report as data (schema pflab.netfilter/audit/1, schemas/audit.schema.json), and its gate.

Pure: takes every host's filter_facts reading (or why there is none), returns plain
data for the JSON file, the templates, JUnit XML and the Prometheus textfiles.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import xml.etree.ElementTree as ET

from ansible_collections.pflab.netfilter.plugins.module_utils import findings

SCHEMA = 'pflab.netfilter/audit/1'
FAIL_ON = findings.SEVERITIES + ('never',)
_FILE_SAFE = re.compile(r'[^A-Za-z0-9._-]')
_NOT_XML = re.compile(u'[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')


def failing(severity, fail_on):
    """Whether a host whose worst finding is ``severity`` fails a gate set at ``fail_on``."""
    return fail_on != 'never' and severity is not None and findings.rank(severity) <= findings.rank(fail_on)


def _host(name, reading, error, fail_on):
    if reading is None:
        return dict(host=name, read=False, error=error or 'no filter_facts reading', severity=None,
                    failing=fail_on != 'never',  # a gate does not pass what it could not read
                    findings=[], hooks=[], digest=None)
    found = reading.get('findings', [])
    severity = findings.worst(found)
    return dict(host=name, read=True, error=None, netns=reading.get('netns'), kernel=reading.get('kernel'),
                commands=reading.get('commands'), digest=reading.get('digest'), severity=severity,
                failing=failing(severity, fail_on), findings=found, hooks=reading.get('hooks', []),
                ties=sum(1 for p in reading.get('hooks', []) for e in p['entries'] if e.get('tie')),
                hooks_listed=reading.get('hooks_listed', False),
                counts=dict((s, sum(1 for f in found if f['severity'] == s)) for s in findings.SEVERITIES))


def build(run_id, generated, hosts, fail_on):
    """``hosts``: [(name, reading or None, error or None)] -> the report's data."""
    if fail_on not in FAIL_ON:
        raise ValueError('fail_on must be one of %s' % ', '.join(FAIL_ON))
    rows = [_host(name, reading, error, fail_on) for name, reading, error in hosts]
    groups = {}
    for row in rows:
        if row['read']:
            groups.setdefault(row['digest'], []).append(row['host'])
    matrix = []
    for row in rows:
        cells = {}
        for found in row['findings']:
            old = cells.get(found['id'])
            if old is None or findings.rank(found['severity']) < findings.rank(old):
                cells[found['id']] = found['severity']
        matrix.append(dict(host=row['host'], severity=row['severity'], cells=cells))
    return {
        'schema': SCHEMA,
        'run_id': run_id,
        'generated': generated,
        'fail_on': fail_on,
        'ids': list(findings.IDS),
        'summary': {
            'hosts': len(rows),
            'read': sum(1 for r in rows if r['read']),
            'unreadable': [r['host'] for r in rows if not r['read']],
            'by_severity': dict((s, [r['host'] for r in rows if r['severity'] == s]) for s in findings.SEVERITIES),
            'clean': [r['host'] for r in rows if r['read'] and r['severity'] is None],
            'failing': [r['host'] for r in rows if r['failing']],
            'groups': len(groups),
        },
        'groups': [dict(digest=digest, hosts=members, severity=next(r['severity'] for r in rows
                                                                    if r['host'] == members[0]))
                   for digest, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))],
        'matrix': matrix,
        'hosts': rows,
    }


def junit(data):
    """JUnit XML: a test suite per host, a test case per finding id, failed at or above the gate."""
    suites = ET.Element('testsuites', name='pflab.netfilter audit %s' % data['run_id'])
    for row in data['hosts']:
        suite = ET.SubElement(suites, 'testsuite', name=row['host'])
        cases = 0
        failures = 0
        if not row['read']:
            case = ET.SubElement(suite, 'testcase', classname=row['host'], name='read')
            ET.SubElement(case, 'error', message=row['error'])
            cases += 1
        for fid in data['ids']:
            case = ET.SubElement(suite, 'testcase', classname=row['host'], name=fid)
            cases += 1
            hits = [f for f in row['findings'] if f['id'] == fid]
            if not row['read']:
                ET.SubElement(case, 'skipped', message='host not read')
            elif hits:
                worst = findings.worst(hits)
                text = '\n'.join('%s: %s\n  %s' % (f['severity'], f['title'], '\n  '.join(f['evidence'])) for f in hits)
                if failing(worst, data['fail_on']):
                    ET.SubElement(case, 'failure', message='%s: %s' % (worst, hits[0]['title']), type=worst).text = text
                    failures += 1
                else:
                    ET.SubElement(case, 'system-out').text = text
        suite.set('tests', str(cases))
        suite.set('failures', str(failures))
        suite.set('errors', '0' if row['read'] else '1')
    # characters XML 1.0 cannot hold (a control character in a table name) are dropped
    return _NOT_XML.sub('', ET.tostring(suites, encoding='unicode')) + '\n'


def file_names(hosts):
    """{host: a file name of its own}: inventory names made safe, made unique with a counter."""
    out, taken = {}, set()
    for host in hosts:
        base = _FILE_SAFE.sub('_', host)[:100] or 'host'
        name, index = base, 1
        while name in taken:
            index += 1
            name = '%s.%d' % (base, index)
        taken.add(name)
        out[host] = name
    return out


def metrics(row, registry_class, gauge_class):
    """One host's metrics in a fresh prometheus_client registry (its classes passed in: an optional library)."""
    registry = registry_class()
    found = gauge_class('pflab_audit_findings', 'Findings of the pflab.netfilter audit, by id and severity',
                        ['id', 'severity'], registry=registry)
    for fid in findings.IDS:
        for severity in findings.SEVERITIES:
            found.labels(id=fid, severity=severity).set(
                sum(1 for f in row['findings'] if f['id'] == fid and f['severity'] == severity))
    gauge_class('pflab_audit_read', 'Whether the host was read (1) or not (0)', registry=registry).set(
        1 if row['read'] else 0)
    gauge_class('pflab_audit_failing', 'Whether the host fails the audit gate', registry=registry).set(
        1 if row['failing'] else 0)
    gauge_class('pflab_audit_priority_ties', 'Hook entries of equal priority whose order is unknown',
                registry=registry).set(row.get('ties', 0))
    return registry
