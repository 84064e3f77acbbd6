import { describe, expect, it } from 'vitest';
import type { IntakeRequest } from './backend';
import cases from '../../../tests/fixtures/intake/cases.json';
import {
  checkForm,
  CONTROL_CHARACTER_MESSAGE,
  emptyForm,
  isMultiLine,
  isOneLine,
  validateIntake,
  vinProblem,
} from './intake';

type Case = {
  description: string;
  input: IntakeRequest;
  current_year: number;
  valid: boolean;
  fields: string[];
};

// The plans the server offers by default; the fixture's "not offered" case relies on them.
const PLANS = ['trial', 'standard', 'extended'];

describe('intake validation on the shared fixture (tests/fixtures/intake/cases.json)', () => {
  it('has the shared cases', () => {
    expect((cases as Case[]).length).toBeGreaterThanOrEqual(40);
  });

  for (const c of cases as Case[]) {
    it(c.description, () => {
      const errors = validateIntake(c.input, c.current_year, PLANS);
      expect(Object.keys(errors).sort()).toEqual([...c.fields].sort());
      expect(Object.keys(errors).length === 0).toBe(c.valid);
    });
  }
});

describe('the form', () => {
  const filled = {
    ...emptyForm('trial'),
    name: 'Dana',
    email: 'dana@example.com',
    year: '2018',
    make: 'Honda',
    model: 'Civic',
    concern: 'Grinding noise when braking',
  };

  it('turns typed text into the request body', () => {
    const { body, errors } = checkForm({ ...filled, mileage: '84,000', vin: ' ' }, 2026, PLANS);
    expect(errors).toEqual({});
    expect(body.vehicle).toEqual({ year: 2018, make: 'Honda', model: 'Civic', vin: null, mileage: 84000 });
    expect(body.phone).toBeNull();
  });

  it('reports numbers that are not whole numbers as field problems', () => {
    const { errors } = checkForm({ ...filled, year: '20x8', mileage: '-5' }, 2026, PLANS);
    expect(Object.keys(errors).sort()).toEqual(['vehicle.mileage', 'vehicle.year']);
    expect(checkForm({ ...filled, year: '' }, 2026).errors['vehicle.year']).toMatch(/between 1900 and 2027/);
    expect(checkForm({ ...filled, mileage: '1.5' }, 2026).errors['vehicle.mileage']).toBeDefined();
  });

  it("uses the server's messages", () => {
    expect(vinProblem('1HGCM82643A004352')).toMatch(/check digit/);
    const errors = validateIntake(
      { ...(cases as Case[])[0].input, concern: 'short' },
      2026,
    );
    expect(errors.concern).toBe('Please write at least 10 characters');
  });

  it("refuses control characters with the server's message, keeping line breaks in the concern", () => {
    const input = (cases as Case[])[0].input;
    const errors = validateIntake({ ...input, name: 'Dana\u0000', concern: 'Grinding\u001b noise' }, 2026);
    expect(errors).toEqual({ name: CONTROL_CHARACTER_MESSAGE, concern: CONTROL_CHARACTER_MESSAGE });
    expect(isOneLine('Dana\tDriver')).toBe(false);
    expect(isMultiLine('Grinding noise\r\n\twhen braking')).toBe(true);
  });
});
