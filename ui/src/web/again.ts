// "Send a new request" after a request nobody accepted: the intake draft filled from that request
// (vehicle, concern, plan) and from who this browser is (name, email), so nothing is typed twice.

import type { Session, User } from '../lib/backend';
import { emptyForm, type IntakeForm } from '../lib/intake';

/** Where the intake page keeps its draft for this tab (Intake.svelte reads it on load). */
export const DRAFT_KEY = 'wrenchline.intake.draft';

/** The intake form for asking again what `session` asked. */
export function draftFrom(session: Session, me: User | null): IntakeForm {
  const form = emptyForm(session.plan);
  form.name = me?.name ?? session.customer_name;
  form.email = me?.email ?? '';
  form.year = String(session.vehicle.year);
  form.make = session.vehicle.make;
  form.model = session.vehicle.model;
  form.vin = session.vehicle.vin ?? '';
  form.mileage = session.vehicle.mileage == null ? '' : String(session.vehicle.mileage);
  form.concern = session.concern;
  return form;
}

/** Puts the draft where the intake page finds it; false when storage is off. */
export function keepDraft(form: IntakeForm, storage: Pick<Storage, 'setItem'> = sessionStorage): boolean {
  try {
    storage.setItem(DRAFT_KEY, JSON.stringify(form));
    return true;
  } catch {
    return false;
  }
}
