/**
 * The ARM template compiled from infra/main.bicep (.bicep/out/main.json), with every module inlined
 * as a nested Microsoft.Resources/deployments template, and how infra/main.parameters.json lines up
 * with its parameters.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  INFRA,
  allStrings,
  allTemplates,
  at,
  loadMainTemplate,
  resourcesOf,
  skipReason,
  staleReason,
  type ArmTemplate,
  type Json,
} from './compiled';

const parametersFileSchema = z.object({
  $schema: z.string(),
  contentVersion: z.string(),
  parameters: z.record(z.string(), z.object({ value: z.json() })),
});

const parametersFile = parametersFileSchema.parse(JSON.parse(readFileSync(join(INFRA, 'main.parameters.json'), 'utf8')));

/** `${NAME}` or `${NAME=default}`: how azd substitutes environment values into the file. */
const AZD_VALUE = /^\$\{([A-Z][A-Z0-9_]*)(?:=([^}]*))?\}$/;

/** The value azd passes when the variable is unset, converted the way ARM reads it for the type. */
function defaultFor(type: string, raw: string): Json {
  if (type === 'bool') return raw === 'true' ? true : raw === 'false' ? false : raw;
  if (type === 'int') return /^-?\d+$/.test(raw) ? Number(raw) : raw;
  return raw;
}

describe.skipIf(skipReason !== undefined)(`compiled template${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let main: ArmTemplate;
  let templates: { path: string; template: ArmTemplate }[];
  beforeAll(() => {
    if (staleReason !== undefined) throw new Error(staleReason);
    main = loadMainTemplate();
    templates = allTemplates(main);
  });

  it('deploys at subscription scope and inlines every module (one nested template per module)', () => {
    expect(main.$schema).toContain('subscriptionDeploymentTemplate.json');
    expect(templates.map((t) => t.path).sort()).toEqual(
      ['main', 'main/api', 'main/app-roles', 'main/identity', 'main/monitoring', 'main/network', 'main/openai', 'main/private-endpoints', 'main/storage', 'main/user-roles'].sort(),
    );
    // A templateLink would be fetched at deployment time; everything must be in this file.
    const linked = templates.flatMap(({ template }) => resourcesOf(template).filter((r) => at(r, 'properties.templateLink') !== undefined));
    expect(linked).toEqual([]);
  });

  it('calls no list*() function (listKeys, listConnectionStrings, ...) and holds no key material', () => {
    const offending = templates.flatMap(({ path, template }) =>
      allStrings(template as Json)
        .filter((s) => /\blist[A-Za-z]*\(|AccountKey|SharedAccessKey|SharedAccessSignature|InstrumentationKey=/i.test(s))
        .map((s) => `${path}: ${s}`),
    );
    expect(offending).toEqual([]);
  });

  it('refers to exactly the five data-plane roles, and not to the broad "Cognitive Services User"', () => {
    const text = JSON.stringify(main);
    const roleIds = new Set([...text.matchAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g)].map((m) => m[0]));
    expect(roleIds).toEqual(
      new Set([
        'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
        '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
        '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
        '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd',
        '3913510d-42f4-4e42-8a64-420c390055eb',
      ]),
    );
    expect(text).not.toContain('a97b65f3-24c7-4388-baec-2e87135dc908');
  });

  it('uses no preview API versions', () => {
    const previews = templates.flatMap(({ path, template }) =>
      resourcesOf(template)
        .filter((r) => typeof r.apiVersion === 'string' && r.apiVersion.includes('preview'))
        .map((r) => `${path}: ${String(r.type)}@${String(r.apiVersion)}`),
    );
    expect(previews).toEqual([]);
  });

  it('has no secure or secret-looking outputs', () => {
    const outputs = templates.flatMap(({ path, template }) =>
      Object.entries(template.outputs ?? {}).map(([name, output]) => ({ path, name, type: at(output, 'type') })),
    );
    expect(outputs.filter((o) => /key|secret|password|connectionstring/i.test(o.name) || /^secure/i.test(String(o.type)))).toEqual([]);
  });

  it('lists in main.parameters.json only parameters main.bicep has', () => {
    const declared = Object.keys(main.parameters ?? {});
    expect(Object.keys(parametersFile.parameters).filter((name) => !declared.includes(name))).toEqual([]);
  });

  it('supplies every main.bicep parameter that has no default', () => {
    const required = Object.entries(main.parameters ?? {})
      .filter(([, parameter]) => parameter.defaultValue === undefined)
      .map(([name]) => name);
    expect(required.sort()).toEqual(['environmentName', 'location']);
    expect(required.filter((name) => !(name in parametersFile.parameters))).toEqual([]);
  });

  it('fills every parameter from the azd environment, with the template default as the fallback', () => {
    for (const [name, { value }] of Object.entries(parametersFile.parameters)) {
      expect(typeof value === 'string' ? AZD_VALUE.test(value) : value, `${name}: ${JSON.stringify(value)}`).toBe(true);
      const [, variable, fallback] = AZD_VALUE.exec(String(value)) ?? [];
      const parameter = main.parameters?.[name];
      if (parameter === undefined || variable === undefined) throw new Error(`${name} is not a main.bicep parameter`);
      if (fallback !== undefined) {
        // A different fallback here would silently override the template's default for azd users.
        expect(defaultFor(parameter.type, fallback), `${name} (${variable})`).toEqual(parameter.defaultValue);
        if (parameter.allowedValues) expect(parameter.allowedValues, name).toContainEqual(defaultFor(parameter.type, fallback));
      }
    }
    expect(parametersFile.parameters.environmentName?.value).toBe('${AZURE_ENV_NAME}');
    expect(parametersFile.parameters.location?.value).toBe('${AZURE_LOCATION}');
    expect(parametersFile.parameters.principalId?.value).toBe('${AZURE_PRINCIPAL_ID}');
    expect(parametersFile.parameters.vnetEnabled?.value).toBe('${VNET_ENABLED=false}');
  });

  it('lets azd pick the region by Azure OpenAI quota for the default chat model', () => {
    const metadata = main.parameters?.location?.metadata;
    expect(at(metadata, 'azd.type')).toBe('location');
    const usage = at(metadata, 'azd.usageName');
    const defaults = main.parameters ?? {};
    expect(usage).toEqual([
      `OpenAI.${String(defaults.chatDeploymentSkuName?.defaultValue)}.${String(defaults.chatModelName?.defaultValue)},${String(defaults.chatDeploymentCapacity?.defaultValue)}`,
    ]);
  });
});
